"""Login throttling (django-axes): failures lock the account and the address for a while, and only them."""

from datetime import timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
LOGIN_PAGES = ["/login/", "/admin/login/"]  # /api/v1/auth/token/: tests/feedback_app/api/test_tokens.py


def _fail(client, url, username, *, times, address="10.0.0.1"):
    """Fail to log in ``times`` times; return the last answer (the limit-th failure is itself refused)."""
    for _ in range(times):
        response = client.post(url, {"username": username, "password": "wrong"}, REMOTE_ADDR=address)
        assert response.status_code in (200, 401, 429), response.status_code  # the form again (HTML), 401 (API), locked
    return response


def _expire_lockouts():
    """Move every recorded failure back past the cool-off, as if that time had passed."""
    from axes.models import AccessAttempt
    from django.conf import settings

    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_failures_lock_the_account_until_the_cool_off_ends(client, url, make_user, settings):
    from feedback_app.models import Role

    user = make_user(Role.ADMIN)
    _fail(client, url, user.username, times=settings.AXES_FAILURE_LIMIT)
    locked = client.post(url, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode() and int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    _expire_lockouts()
    assert client.post(url, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2").status_code == 302


def test_failures_lock_the_address_for_every_account(client, make_user, settings):
    from feedback_app.models import Role

    user = make_user(Role.RATER)
    for i in range(settings.AXES_FAILURE_LIMIT):
        _fail(client, "/login/", f"nobody{i}", times=1, address="10.0.0.9")
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.9").status_code == 429
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.10").status_code == 302


def test_a_success_resets_the_count(client, make_user, settings):
    from feedback_app.models import Role

    user = make_user(Role.RATER)
    _fail(client, "/login/", user.username, times=settings.AXES_FAILURE_LIMIT - 1)
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1").status_code == 302
    client.logout()
    _fail(client, "/login/", user.username, times=settings.AXES_FAILURE_LIMIT - 1)
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1").status_code == 302


def test_force_login_is_not_throttled(client, rater):
    """Tests (and sessions) that log in without a password never meet the lockout."""
    for _ in range(20):
        client.force_login(rater)
    assert client.get("/label/").status_code == 200
