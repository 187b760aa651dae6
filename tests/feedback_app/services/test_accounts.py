import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.models import ApiToken, AuditEntry, Role
from feedback_app.services.accounts import api_token_issue, api_token_revoke, api_token_touch, user_create

pytestmark = pytest.mark.django_db


def test_an_issued_token_is_stored_only_as_its_digest(rater):
    """The key is returned once; the database holds its SHA-256 and a display prefix, never the key."""
    token, key = api_token_issue(user=rater)
    token.refresh_from_db()
    assert token.digest == hashlib.sha256(key.encode()).hexdigest() and token.prefix == key[:8]
    assert key not in {value for value in ApiToken.objects.values_list("digest", "prefix").get(pk=token.pk)}
    assert token.is_active and token.last_used_at is None


def test_every_issue_makes_a_new_token(rater):
    """Issuing twice gives two different keys, both active."""
    (first, key1), (second, key2) = api_token_issue(user=rater), api_token_issue(user=rater)
    assert key1 != key2 and first.pk != second.pk
    assert ApiToken.objects.filter(user=rater, revoked_at__isnull=True).count() == 3  # and the one user_create made


def test_user_create_returns_a_working_token_once(db):
    """user_create's token is one of the user's hashed tokens."""
    user, _, key = user_create(username="dana", role=Role.RATER)
    assert ApiToken.objects.filter(user=user, digest=hashlib.sha256(key.encode()).hexdigest()).exists()


def test_revoke_is_idempotent(rater):
    """A revoked token stays revoked at its first revocation time."""
    token, _ = api_token_issue(user=rater)
    assert api_token_revoke(token=token) is True
    revoked_at = token.revoked_at
    assert api_token_revoke(token=token) is False
    token.refresh_from_db()
    assert token.revoked_at == revoked_at and not token.is_active


def test_touch_writes_last_used_at_most_once_a_minute(rater):
    """A second use within a minute leaves last_used_at alone; one after a minute moves it."""
    token, _ = api_token_issue(user=rater)
    api_token_touch(token=token)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    api_token_touch(token=token)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    token.last_used_at = timezone.now() - timedelta(minutes=2)
    api_token_touch(token=token)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


def test_issue_and_revoke_are_audited_by_prefix(rater, admin_user):
    """The audit log names the token by prefix and who acted; never the key."""
    token, key = api_token_issue(user=rater, actor=admin_user)
    api_token_revoke(token=token, actor=admin_user)
    api_token_revoke(token=token, actor=admin_user)  # already revoked: no second entry
    entries = list(AuditEntry.objects.filter(target=f"token:{token.prefix}").order_by("id").values_list("action", "actor", "details"))
    assert entries == [("token.issue", admin_user.pk, {"user": rater.username}), ("token.revoke", admin_user.pk, {"user": rater.username})]
    assert not AuditEntry.objects.filter(details__icontains=key).exists()
