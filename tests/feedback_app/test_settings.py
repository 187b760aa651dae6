"""Settings read from the environment: each case imports the settings module in a fresh process."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

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
