from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from feedback_app.models import ApiToken, Role

pytestmark = pytest.mark.django_db
URL = "/api/v1/auth/token/"
NEXT = "/api/v1/comparisons/next/"
PASSWORD = "correct horse battery staple"


def test_each_login_issues_a_new_token_shown_once(rater):
    """Two logins give two working keys; the response is not cached."""
    client = APIClient()
    first = client.post(URL, {"username": rater.username, "password": PASSWORD})
    second = client.post(URL, {"username": rater.username, "password": PASSWORD})
    assert first.status_code == second.status_code == 201 and first["Cache-Control"] == "no-store"
    keys = {first.json()["token"], second.json()["token"]}
    assert len(keys) == 2 and first.json()["prefix"] == first.json()["token"][:8]
    for key in keys:
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.get(NEXT).status_code == 204
    assert not ApiToken.objects.filter(digest__in=keys).exists()


def test_wrong_credentials_are_a_401_that_says_so(rater):
    response = APIClient().post(URL, {"username": rater.username, "password": "wrong"})
    assert response.status_code == 401 and "username and password" in response.json()["detail"]


@pytest.mark.parametrize("body", [{}, {"username": "", "password": "x"}, {"username": "kim", "password": 7}, {"username": "kim", "password": "a\x00"}])
def test_a_bad_body_is_a_400_naming_the_field(body):
    response = APIClient().post(URL, body, format="json")
    assert response.status_code == 400 and ("password" in response.json() or "username" in response.json() or "NUL" in response.json()["detail"])


def test_failures_lock_the_endpoint_with_a_json_answer_that_expires(make_user, settings):
    from axes.models import AccessAttempt

    user = make_user(Role.RESEARCHER)
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(URL, {"username": user.username, "password": "wrong"}, format="json", REMOTE_ADDR="10.0.0.4")
    locked = client.post(URL, {"username": user.username, "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.5")
    assert locked.status_code == 429 and "Too many failed logins" in locked.json()["detail"] and int(locked["Retry-After"]) > 0
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert client.post(URL, {"username": user.username, "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.5").json()["token"]


@pytest.mark.parametrize("body, field", [({"password": PASSWORD}, "username"), ({"username": "x"}, "password")])
def test_a_missing_field_is_a_400_naming_it(rater, body, field):
    response = APIClient().post(URL, body, format="json")
    assert response.status_code == 400 and field in response.json()


def test_delete_revokes_the_token_in_use(rater):
    """DELETE with a token revokes it; the next request with it is refused."""
    client = APIClient()
    key = client.post(URL, {"username": rater.username, "password": PASSWORD}).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.delete(URL).status_code == 204
    assert client.get(NEXT).status_code == 401


def test_delete_needs_a_token(rater):
    assert APIClient().delete(URL).status_code in (401, 403)
