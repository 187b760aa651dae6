"""Backups of the database (and the kept checkpoints) and restoring one.

SQLite is copied with its online backup API: one step under a read transaction, so the copy is
a consistent snapshot while the studio keeps writing (WAL readers do not block writers).
PostgreSQL is backed up with its own tools; ``postgres_commands`` spells them out for the
configured database. Every file written here is readable by its owner only (labels and rater
pseudonyms are in it).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sqlite3
import tarfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from django.conf import settings
from django.db import connections
from django.utils import timezone

from feedback_app.models import PolicyVersion, RewardModelVersion, VersionStatus
from feedback_app.selectors.queue_head import HEAD_HINT_SECONDS

SQLITE_HEADER = b"SQLite format 3\x00"
LOCK_FILE = "serve.lock"  # held by a running studio (`manage.py serve`) with flock


class BackupError(Exception):
    """A backup or restore that cannot proceed; the message says why and what to do."""


def database_is_sqlite() -> bool:
    """Return whether the configured database is SQLite (else PostgreSQL)."""
    return connections["default"].vendor == "sqlite"


def postgres_commands(path: Path, *, db: dict | None = None) -> tuple[str, str]:
    """Return the pg_dump and pg_restore command lines that back the database ``db`` (default: the
    configured one) up to ``path`` and restore it; the password comes from PGPASSWORD or ~/.pgpass,
    never the line."""
    db = db or connections["default"].settings_dict
    target = [f"--host={db.get('HOST') or 'localhost'}", f"--port={db.get('PORT') or 5432}"]
    if db.get("USER"):
        target.append(f"--username={db['USER']}")
    quoted = " ".join(shlex.quote(arg) for arg in target)
    name, file = shlex.quote(db["NAME"]), shlex.quote(str(path))
    return (f"pg_dump --format=custom --no-owner {quoted} --file={file} {name}",
            f"pg_restore --clean --if-exists --no-owner --single-transaction {quoted} --dbname={name} {file}")


# What a dump of a studio that is labelling costs it (bench/README, sessions 43 and 44: ``lease_pick --snapshot``).
DUMP_WHILE_LABELLING = ("pg_dump holds one snapshot for as long as it runs; meanwhile nothing completed since it began can be vacuumed, "
                        f"and the one lease's pick in {HEAD_HINT_SECONDS:g} s of each web process that reads the queue from its start walks past every "
                        "comparison completed since (about 0.2 ms more for each 1,000). Dump a busy studio from a replica, or when it is quiet.")


def database_backup(*, out: Path) -> Path:
    """Write a consistent copy of the SQLite database to ``out`` (which must not exist); return it."""
    if not database_is_sqlite():
        raise BackupError("the database is PostgreSQL: back it up with pg_dump, and restore that with pg_restore "
                          "(the password from PGPASSWORD or ~/.pgpass):\n  " + "\n  ".join(postgres_commands(out)) + "\n" + DUMP_WHILE_LABELLING)
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists already; name a new file")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a folder")
    if not _database_path().is_file():
        raise BackupError(f"there is no database at {_database_path()} to back up; run `manage.py migrate` first")
    with _private_partial(out) as partial:
        source = sqlite3.connect(_database_path(), timeout=30)
        target = sqlite3.connect(partial)
        try:
            source.backup(target)  # all pages in one step: one snapshot
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            target.close()
            source.close()
        _check_sqlite(partial)
    return out


def model_store_archive(*, out: Path) -> list[str]:
    """Write a tar of the checkpoint folders of every version not pruned to ``out``; return their paths.

    The embedding cache is left out: it is only a cache.
    """
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists already; name a new file")
    paths = sorted({*_kept_paths(RewardModelVersion), *_kept_paths(PolicyVersion)})
    store = Path(settings.MODEL_STORE)
    with _private_partial(out) as partial, tarfile.open(partial, "w") as tar:
        written = []
        for path in paths:
            if (store / path).is_dir():
                tar.add(store / path, arcname=path)
                written.append(path)
    return written


def database_restore(*, source: Path) -> Path:
    """Replace the SQLite database with the backup ``source``; return where the previous one was moved.

    Refused while a studio holds VAR_DIR/serve.lock; holds that lock itself meanwhile, so none starts.
    """
    if not database_is_sqlite():
        raise BackupError("the database is PostgreSQL: restore it with pg_restore (the password from PGPASSWORD or "
                          "~/.pgpass):\n  " + postgres_commands(Path(source))[1])
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    current = _database_path()
    if current.exists() and source.resolve() == current.resolve():
        raise BackupError(f"{source} is the database itself; name a backup file")
    _check_backup(source)
    current.parent.mkdir(parents=True, exist_ok=True)
    with _studio_stopped():
        connections.close_all()
        if current.exists():
            _checkpoint(current)
        aside = current.with_name(f"{current.name}.before-restore-{timezone.now():%Y%m%d-%H%M%S}")
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{current}{suffix}").exists():
                os.replace(f"{current}{suffix}", f"{aside}{suffix}")
        with _private_partial(current) as partial, open(source, "rb") as src, open(partial, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    return aside


def _kept_paths(model) -> list[str]:
    return list(model.objects.exclude(status=VersionStatus.PRUNED).values_list("path", flat=True))


def _database_path() -> Path:
    return Path(connections["default"].settings_dict["NAME"])


@contextmanager
def _private_partial(final: Path) -> Iterator[Path]:
    """Yield an empty owner-only file beside ``final``, renamed to ``final`` if the block succeeds."""
    partial = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        yield partial
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def _check_sqlite(path: Path) -> sqlite3.Connection:
    with open(path, "rb") as f:
        if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise BackupError(f"{path} is not a SQLite database")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        result = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from None
    if result != "ok":
        db.close()
        raise BackupError(f"{path} is damaged: {result}")
    return db


def _check_backup(path: Path) -> None:
    db = _check_sqlite(path)
    try:
        applied = db.execute("SELECT name FROM django_migrations WHERE app = 'feedback_app'").fetchall()
    except sqlite3.DatabaseError:
        applied = []
    finally:
        db.close()
    if not applied:
        raise BackupError(f"{path} is a SQLite database but not one of this studio (no feedback_app migrations in it)")


def _checkpoint(path: Path) -> None:
    """Fold the -wal file into the database, so the copy moved aside is whole on its own."""
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


@contextmanager
def _studio_stopped() -> Iterator[None]:
    """Hold VAR_DIR/serve.lock for the block; raise BackupError while a studio holds it."""
    var_dir = Path(settings.VAR_DIR)
    var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(var_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"the studio of {var_dir} is running ({var_dir / LOCK_FILE} is locked); stop it, then restore") from None
        yield
    finally:
        os.close(fd)
