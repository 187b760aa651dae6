from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from feedback_app.models import Role

pytestmark = pytest.mark.django_db

URL = "/api/v1/auth/token/"
PASSWORD = "correct horse battery staple"


def test_a_good_login_gets_the_token_and_a_bad_one_a_401(make_user):
    user = make_user(Role.RESEARCHER)
    client = APIClient()
    assert client.post(URL, {"username": user.username, "password": PASSWORD}, format="json").json()["token"]
    bad = client.post(URL, {"username": user.username, "password": "wrong"}, format="json")
    assert bad.status_code == 401 and "username and password" in bad.json()["detail"]


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
