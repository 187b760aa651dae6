import sqlite3
import tarfile

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from feedback_app import training_bridge
from feedback_app.models import RewardModelVersion, VersionStatus

pytestmark = pytest.mark.django_db(transaction=True)  # the backup reads what is committed


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's online backup")
def test_backup_writes_the_database_and_with_models_the_kept_checkpoints(tmp_path, capsys):
    """`backup OUT --with-models` writes a SQLite copy and OUT.models.tar, and says where."""
    training_bridge.checkpoint_store().write("reward", "rm-1", {}, lambda tmp: (tmp / "heads.pt").write_bytes(b"w"))
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status=VersionStatus.ACTIVE)
    out = tmp_path / "studio.sqlite3"
    call_command("backup", str(out), "--with-models")
    printed = capsys.readouterr().out
    assert f"database: {out}" in printed and "(1 checkpoint folders)" in printed
    copy = sqlite3.connect(out)
    assert copy.execute("SELECT name FROM feedback_app_rewardmodelversion").fetchall() == [("rm-1",)]
    copy.close()
    with tarfile.open(tmp_path / "studio.sqlite3.models.tar") as tar:
        assert "reward/rm-1/heads.pt" in tar.getnames()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's online backup")
def test_backup_refuses_an_existing_file(tmp_path):
    (tmp_path / "out").write_text("")
    with pytest.raises(CommandError, match="exists already"):
        call_command("backup", str(tmp_path / "out"))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the refusal is PostgreSQL's")
def test_backup_on_postgresql_prints_the_pg_dump_and_pg_restore_commands(tmp_path):
    """On PostgreSQL the command refuses and prints the exact commands for the configured database."""
    with pytest.raises(CommandError) as refused:
        call_command("backup", str(tmp_path / "studio.dump"))
    message = str(refused.value)
    assert "pg_dump --format=custom" in message and "pg_restore --clean" in message
    assert "Dump a busy studio from a replica, or when it is quiet." in message  # what a dump under load costs the picks
    assert f"{tmp_path}/studio.dump" in message and connection.settings_dict["NAME"] in message
    assert not (tmp_path / "studio.dump").exists()
