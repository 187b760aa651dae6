"""Settings that decide which studio a process belongs to: VAR_DIR, the secret key, Redis."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings as django_settings

from feedback_app.runtime import runtime_write

ROOT = Path(django_settings.BASE_DIR)
PRINT = "from django.conf import settings; print(settings.REDIS_URL, settings.VAR_DIR, sep='\\n')"


def settings_of(env: dict[str, str]) -> list[str]:
    env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {PRINT}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={**env, "DJANGO_SETTINGS_MODULE": "feedback_app.settings"})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_commands_use_the_redis_the_running_studio_wrote(tmp_path):
    """With REDIS_URL unset, settings take the studio's Redis from VAR_DIR/studio.json, whatever port the shell exports."""
    runtime_write(tmp_path, {"pid": os.getpid(), "redis_url": "redis://127.0.0.1:7123/0"})
    env = {"VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 50, "REDIS_URL": None, "EMBEDDED_REDIS_PORT": "6999"}
    assert settings_of(env) == ["redis://127.0.0.1:7123/0", str(tmp_path)]


def test_a_dead_studio_s_runtime_file_is_ignored(tmp_path):
    """A file left by a supervisor that was killed names a Redis nobody runs: settings fall back to EMBEDDED_REDIS_PORT."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    runtime_write(tmp_path, {"pid": gone.pid, "redis_url": "redis://127.0.0.1:7123/0"})
    env = {"VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 50, "REDIS_URL": None, "EMBEDDED_REDIS_PORT": "6999"}
    assert settings_of(env)[0] == "redis://127.0.0.1:6999/0"


def test_redis_url_in_the_environment_wins_and_without_a_studio_the_embedded_port_counts(tmp_path):
    """REDIS_URL beats the runtime file; with neither, EMBEDDED_REDIS_PORT names the embedded Redis."""
    env = {"VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 50, "REDIS_URL": None, "EMBEDDED_REDIS_PORT": "6999"}
    assert settings_of(env)[0] == "redis://127.0.0.1:6999/0"
    runtime_write(tmp_path, {"pid": os.getpid(), "redis_url": "redis://127.0.0.1:7123/0"})
    assert settings_of({**env, "REDIS_URL": "redis://cache.internal:6379/2"})[0] == "redis://cache.internal:6379/2"


def test_a_relative_var_dir_is_made_absolute(tmp_path):
    """Children started elsewhere find the same studio."""
    (tmp_path / "state").mkdir()
    env = {"VAR_DIR": "state", "SECRET_KEY": "x" * 50}
    result = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); import django; django.setup(); {PRINT}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": "feedback_app.settings"})
    assert result.stdout.splitlines()[1] == str(tmp_path / "state"), result.stderr
