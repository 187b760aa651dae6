import pytest
from rest_framework.test import APIClient

from feedback_app.services.accounts import api_token_issue, api_token_revoke

pytestmark = pytest.mark.django_db
NEXT = "/api/v1/comparisons/next/"


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_valid_token_authenticates(rater):
    """`Authorization: Token <key>` authenticates and records the use."""
    token, key = api_token_issue(user=rater)
    assert client_with(key).get(NEXT).status_code == 204
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_revoked_token_is_refused_on_the_next_request(rater):
    """Revocation takes effect at once: the same client is refused right after."""
    token, key = api_token_issue(user=rater)
    client = client_with(key)
    assert client.get(NEXT).status_code == 204
    api_token_revoke(token=token)
    response = client.get(NEXT)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


@pytest.mark.parametrize("header", ["Token nope", "Token ", "Token a b"])
def test_unknown_or_malformed_tokens_are_refused(rater, header):
    """A key that matches no digest, or a malformed header, is a 401, not a 500."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(NEXT).status_code == 401


def test_the_digest_itself_is_not_a_key(rater):
    """Someone who reads the database's digest can't authenticate with it."""
    token, _ = api_token_issue(user=rater)
    assert client_with(token.digest).get(NEXT).status_code == 401


def test_an_inactive_users_token_is_refused(rater):
    """Deactivating a user stops their tokens."""
    _, key = api_token_issue(user=rater)
    rater.is_active = False
    rater.save(update_fields=["is_active"])
    assert client_with(key).get(NEXT).status_code == 401
