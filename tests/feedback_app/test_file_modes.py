import os
import stat

import pytest
from django.db.utils import ConnectionHandler

from feedback_app.file_modes import var_files_restrict


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_var_dir_and_its_secrets_become_owner_only(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    (var / "secret_key").write_text("k")
    (var / "db.sqlite3").write_text("")
    (var / "db.sqlite3-wal").write_text("")
    for path in (var / "secret_key", var / "db.sqlite3", var / "db.sqlite3-wal"):
        os.chmod(path, 0o644)
    var_files_restrict(var_dir=var, sqlite_path=str(var / "db.sqlite3"))
    assert mode(var) == 0o700
    assert mode(var / "secret_key") == mode(var / "db.sqlite3") == mode(var / "db.sqlite3-wal") == 0o600


def test_stricter_modes_and_missing_files_are_left_alone(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        var_files_restrict(var_dir=tmp_path, sqlite_path=":memory:")
        assert mode(tmp_path) == 0o500
    finally:
        os.chmod(tmp_path, 0o700)


@pytest.mark.django_db
def test_a_new_sqlite_connection_restricts_its_database_file(tmp_path, settings):
    """Through the connection_created hook: the file SQLite just made (umask 022) ends up 0600."""
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir(mode=0o755)
    old_umask = os.umask(0o022)
    handler = ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(settings.VAR_DIR / "db.sqlite3")}})
    try:
        handler["default"].ensure_connection()
        assert mode(settings.VAR_DIR / "db.sqlite3") == 0o600 and mode(settings.VAR_DIR) == 0o700
    finally:
        os.umask(old_umask)
        handler.close_all()


@pytest.mark.django_db
def test_the_test_database_itself_is_owner_only(settings):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("a SQLite file only")
    connection.ensure_connection()
    assert mode(connection.settings_dict["NAME"]) == 0o600
