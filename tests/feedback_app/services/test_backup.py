import fcntl
import os
import sqlite3
import tarfile
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

from feedback_app import training_bridge
from feedback_app.models import AuditEntry, RewardModelVersion, VersionStatus
from feedback_app.services.backup import BackupError, database_backup, database_restore, model_store_archive, postgres_commands

sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's online backup; PostgreSQL uses pg_dump")
BATCH = 3  # rows each writer transaction adds


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def studio_backup(path: Path) -> Path:
    """Write a minimal SQLite file that looks like a backup of this studio."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT, applied TEXT)")
    db.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('feedback_app', '0001_initial', '2026-01-01')")
    db.commit()
    db.close()
    return path


@pytest.fixture
def aside_files():
    """Delete the databases a restore moved aside next to the test database."""
    moved = []
    yield moved
    for path in moved:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@sqlite_only
def test_a_backup_taken_while_another_thread_writes_is_consistent_and_restorable(transactional_db, tmp_path, settings, aside_files):
    """The copy holds only whole transactions of a writer that keeps going; restoring it brings exactly those back."""
    settings.VAR_DIR = tmp_path
    stop, committed = threading.Event(), []

    def write():
        try:
            while not stop.is_set():
                with transaction.atomic():
                    for _ in range(BATCH):
                        AuditEntry.objects.create(action="test.batch", target=str(len(committed)))
                committed.append(len(committed))
        finally:
            connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_for(lambda: len(committed) >= 5, "the writer's first batches")
        out = database_backup(out=tmp_path / "backup.sqlite3")
        seen = len(committed)
        wait_for(lambda: len(committed) > seen + 5, "the writer to go on after the backup")
    finally:
        stop.set()
        writer.join()

    assert os.stat(out).st_mode & 0o777 == 0o600
    copy = sqlite3.connect(out)
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    batches = copy.execute("SELECT target, COUNT(*) FROM feedback_app_auditentry WHERE action = 'test.batch' GROUP BY target").fetchall()
    copy.close()
    assert len(batches) >= 5 and {n for _, n in batches} == {BATCH}
    assert AuditEntry.objects.filter(action="test.batch").count() > BATCH * len(batches)

    aside_files.append(database_restore(source=out))
    assert AuditEntry.objects.filter(action="test.batch").count() == BATCH * len(batches)
    assert Path(aside_files[0]).exists()  # the database it replaced is kept


@sqlite_only
def test_a_backup_never_overwrites(tmp_path, db):
    """An existing OUT is refused by name."""
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(BackupError, match="taken exists already"):
        database_backup(out=tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"


@sqlite_only
def test_restore_refuses_the_database_itself(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    with pytest.raises(BackupError, match="is the database itself"):
        database_restore(source=Path(connection.settings_dict["NAME"]))


@sqlite_only
def test_restore_refuses_while_the_studio_runs(tmp_path, settings):
    """A held VAR_DIR/serve.lock (a running `serve`) stops a restore before it touches the database."""
    settings.VAR_DIR = tmp_path
    backup = studio_backup(tmp_path / "backup.sqlite3")
    fd = os.open(tmp_path / "serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(BackupError, match="is running"):
            database_restore(source=backup)
    finally:
        os.close(fd)


@sqlite_only
@pytest.mark.parametrize("content, error", [
    (b"name,winner\n1,a\n", "is not a SQLite database"),
    (None, "not one of this studio"),
])
def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path, settings, content, error):
    """Only a SQLite database with this studio's migrations table is restored."""
    settings.VAR_DIR = tmp_path
    path = tmp_path / "in"
    if content is None:
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    else:
        path.write_bytes(content)
    with pytest.raises(BackupError, match=error):
        database_restore(source=path)


def test_model_store_archive_holds_the_folders_of_versions_not_pruned(tmp_path, db):
    """The tar holds each unpruned version's checkpoint folder, not pruned ones nor the embedding cache."""
    store = training_bridge.checkpoint_store()
    for name, status in (("rm-1", VersionStatus.PRUNED), ("rm-2", VersionStatus.ACTIVE)):
        store.write("reward", name, {}, lambda tmp: (tmp / "heads.pt").write_bytes(b"w"))
        RewardModelVersion.objects.create(name=name, path=f"reward/{name}", status=status)
    (store.root / "embeddings").mkdir()
    (store.root / "embeddings" / "x.npz").write_bytes(b"v")
    out = tmp_path / "models.tar"
    assert model_store_archive(out=out) == ["reward/rm-2"]
    assert os.stat(out).st_mode & 0o777 == 0o600
    with tarfile.open(out) as tar:
        assert {m.name for m in tar.getmembers()} == {"reward/rm-2", "reward/rm-2/heads.pt", "reward/rm-2/manifest.json"}


def test_postgres_commands_name_the_configured_database(tmp_path):
    """The printed pg_dump and pg_restore lines carry host, port, user and database, never the password."""
    db = {"NAME": "studio", "USER": "feedback", "PASSWORD": "s3cret", "HOST": "db.internal", "PORT": 5433}
    dump, restore = postgres_commands(tmp_path / "out.dump", db=db)
    assert dump == f"pg_dump --format=custom --no-owner --host=db.internal --port=5433 --username=feedback --file={tmp_path}/out.dump studio"
    assert restore.startswith("pg_restore --clean --if-exists --no-owner --single-transaction --host=db.internal")
    assert restore.endswith(f"--dbname=studio {tmp_path}/out.dump")
    assert "s3cret" not in dump + restore


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the refusal is PostgreSQL's")
def test_on_postgresql_backup_and_restore_print_the_commands(tmp_path):
    """On PostgreSQL a backup is refused with the pg_dump line to run instead, and a restore with pg_restore's."""
    with pytest.raises(BackupError, match="pg_dump --format=custom") as refused:
        database_backup(out=tmp_path / "out.dump")
    assert connection.settings_dict["NAME"] in str(refused.value)
    with pytest.raises(BackupError, match="pg_restore --clean"):
        database_restore(source=tmp_path / "out.dump")
