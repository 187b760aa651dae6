"""Keep VAR_DIR (the SQLite database, the secret key, checkpoints, Redis data) readable only by its owner."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def var_files_restrict(*, var_dir: Path, sqlite_path: str | None = None) -> None:
    """Make ``var_dir`` 0700 and the secret key and SQLite files in use 0600 where they are looser."""
    _restrict(Path(var_dir), DIR_MODE)
    _restrict(Path(var_dir) / "secret_key", FILE_MODE)
    if sqlite_path and sqlite_path != ":memory:" and not sqlite_path.startswith("file:"):
        # SQLite gives its -wal and -shm files the database file's mode, but they may predate this.
        for suffix in ("", "-wal", "-shm"):
            _restrict(Path(sqlite_path + suffix), FILE_MODE)


def _restrict(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~mode:
            os.chmod(path, current & mode)
    except FileNotFoundError:
        return
    except OSError as exc:  # another owner, a read-only mount: serving matters more
        logger.warning("could not restrict %s to mode %o: %s", path, mode, exc)


_restricted_for_server = False  # a server database's connection opened in this process, and VAR_DIR was restricted then


def on_connection_created(sender, connection, **kwargs) -> None:
    """Restrict the files when a database connection opens (a few stat calls): each time for SQLite, whose -wal and -shm
    files come with connections; once a process for a database server, whose pooled connections "open" for every request."""
    global _restricted_for_server
    if connection.vendor != "sqlite":
        if _restricted_for_server:
            return
        _restricted_for_server = True
    sqlite_path = str(connection.settings_dict["NAME"]) if connection.vendor == "sqlite" else None
    var_files_restrict(var_dir=settings.VAR_DIR, sqlite_path=sqlite_path)
