"""Settings read from the environment, each case in a fresh process: HTTPS, VAR_DIR, the secret key, Redis."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from feedback_app.runtime import runtime_write

NAMES = ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER"]


def settings_with(**env) -> dict:
    code = f"import json, feedback_app.settings as s; print(json.dumps({{n: getattr(s, n) for n in {NAMES!r}}}))"
    base = {k: v for k, v in os.environ.items() if k not in ("HTTPS", "SECURE_COOKIES", "HSTS_SECONDS", "HSTS_INCLUDE_SUBDOMAINS", "TRUST_X_FORWARDED_PROTO")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=django_settings.BASE_DIR, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_plain_http_by_default():
    assert settings_with() == {n: v for n, v in zip(NAMES, [False, False, 0, False, None])}


def test_https_turns_on_secure_cookies_hsts_and_the_proxy_header():
    assert settings_with(HTTPS="1") == {n: v for n, v in zip(NAMES, [True, True, 31_536_000, False, ["HTTP_X_FORWARDED_PROTO", "https"]])}


def test_each_part_can_be_set_on_its_own():
    got = settings_with(HTTPS="1", HSTS_SECONDS="3600", HSTS_INCLUDE_SUBDOMAINS="1", TRUST_X_FORWARDED_PROTO="0")
    assert got["SECURE_HSTS_SECONDS"] == 3600 and got["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and got["SECURE_PROXY_SSL_HEADER"] is None
    assert settings_with(SECURE_COOKIES="1")["SESSION_COOKIE_SECURE"] is True


def test_a_bad_value_names_the_variable():
    with pytest.raises(subprocess.CalledProcessError) as failure:
        settings_with(HTTPS="maybe")
    assert "HTTPS must be a boolean" in failure.value.stderr


@pytest.mark.django_db
def test_an_https_request_gets_hsts_and_secure_cookies(settings, rater):
    from django.test import Client

    settings.SECURE_HSTS_SECONDS = 3600
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()
    response = client.post("/login/", {"username": rater.username, "password": "correct horse battery staple"}, HTTP_X_FORWARDED_PROTO="https")
    assert response["Strict-Transport-Security"] == "max-age=3600"
    assert response.cookies["sessionid"]["secure"] and response.cookies["sessionid"]["httponly"]
    assert "Strict-Transport-Security" not in client.get("/login/")  # plain http: no HSTS


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
