from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from feedback_app.models import AuditEntry

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="restores a SQLite backup; PostgreSQL uses pg_restore")


def test_restore_brings_back_the_backup_and_keeps_the_replaced_database(transactional_db, tmp_path, settings, capsys):
    """After `restore`, the database is the backup's; the one it replaced is named and kept."""
    settings.VAR_DIR = tmp_path
    AuditEntry.objects.create(action="test.before")
    call_command("backup", str(tmp_path / "b.sqlite3"))
    AuditEntry.objects.create(action="test.after")
    call_command("restore", str(tmp_path / "b.sqlite3"))
    printed = capsys.readouterr().out
    aside = Path(printed.split("the previous database is at ")[1].split(". Run")[0])
    try:
        assert list(AuditEntry.objects.values_list("action", flat=True)) == ["test.before"]
        assert aside.exists()
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{aside}{suffix}").unlink(missing_ok=True)


def test_restore_names_a_missing_file(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    with pytest.raises(CommandError, match="nowhere.sqlite3 is not a file"):
        call_command("restore", str(tmp_path / "nowhere.sqlite3"))
