import pytest
from rest_framework.test import APIClient

from feedback_app.models import ApiToken

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


def test_wrong_credentials_are_a_400_that_says_so(rater):
    response = APIClient().post(URL, {"username": rater.username, "password": "wrong"})
    assert response.status_code == 400 and "username and password" in response.json()["non_field_errors"][0]


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
