"""API tokens kept in a web process's memory, forgotten when any credential changes (selectors.token_cache)."""

from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from feedback_app.models import ApiToken, CampaignMember, Role
from feedback_app.selectors import token_cache
from feedback_app.services.accounts import api_token_issue, api_token_revoke, role_group_sync
from feedback_app.services.campaigns import campaign_create, member_remove, member_set
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db
NEXT = "/api/v1/comparisons/next/"
TOKEN_TABLE = ApiToken._meta.db_table


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def statements_of(call) -> tuple[object, list[str]]:
    """Run ``call``; return its result and the text of every statement it ran (an execute wrapper sees each one's text,
    where PostgreSQL's query log has none for a prepared statement)."""
    seen = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        result = call()
    return result, seen


def token_reads(call) -> tuple[object, int]:
    """Run ``call``; return its result and how many statements read the token table."""
    result, seen = statements_of(call)
    return result, sum(1 for sql in seen if f"FROM {TOKEN_TABLE}" in sql or f'FROM "{TOKEN_TABLE}"' in sql)


def test_a_kept_token_is_checked_without_the_database(rater, token_cache_on):
    """The first call reads the token; the next ones of that process do not, and are the same rater."""
    _, key = api_token_issue(user=rater)
    client = client_with(key)
    response, reads = token_reads(lambda: client.get(NEXT))
    assert response.status_code == 204 and reads == 1
    response, reads = token_reads(lambda: client.get(NEXT))
    assert response.status_code == 204 and reads == 0
    assert response.wsgi_request.user.pk == rater.pk and len(token_cache_on) == 1


def test_nothing_is_kept_while_the_cache_is_off(rater):
    """API_TOKEN_CACHE_SECONDS=0 (the tests' default): every call reads its token."""
    _, key = api_token_issue(user=rater)
    client = client_with(key)
    assert [token_reads(lambda: client.get(NEXT))[1] for _ in range(3)] == [1, 1, 1]


def test_a_revocation_takes_effect_on_the_next_request(rater, token_cache_on, django_capture_on_commit_callbacks):
    """Revoked and committed, a kept token is refused on the very next call of the process that revoked it."""
    token, key = api_token_issue(user=rater)
    client = client_with(key)
    client.get(NEXT)
    assert token_reads(lambda: client.get(NEXT))[1] == 0
    with django_capture_on_commit_callbacks(execute=True):
        api_token_revoke(token=token)
    response = client.get(NEXT)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


@pytest.mark.parametrize("change", ["deactivate", "delete token", "delete user", "role"])
def test_a_change_of_user_or_token_is_seen_on_the_next_request(rater, token_cache_on, django_capture_on_commit_callbacks, change):
    """A user deactivated or deleted, a token deleted (as the admin does them) or a role changed: the kept token is
    forgotten once that commits, and the next call reads the truth."""
    token, key = api_token_issue(user=rater)
    client = client_with(key)
    client.get(NEXT)
    assert len(token_cache_on) == 1
    with django_capture_on_commit_callbacks(execute=True):
        if change == "deactivate":
            rater.is_active = False
            rater.save()
        elif change == "delete token":
            ApiToken.objects.filter(pk=token.pk).delete()
        elif change == "delete user":
            rater.delete()
        else:
            rater.profile.role = Role.RESEARCHER
            rater.profile.save()
            role_group_sync(user=rater, role=Role.RESEARCHER)
    assert len(token_cache_on) == 0
    response = client.get(NEXT)
    if change == "role":
        assert response.wsgi_request.user.profile.role == Role.RESEARCHER
    else:
        assert response.status_code == 401


def test_memberships_are_read_again_after_a_membership_changes(rater, admin_user, token_cache_on, django_capture_on_commit_callbacks):
    """The token's campaign memberships come from the kept row: a membership added or removed is forgotten at once."""
    campaign = campaign_create(slug="kept", name="Kept", actor=admin_user)
    _, key = api_token_issue(user=rater)
    checked = lambda: token_cache.api_token_checked(key=key).memberships  # noqa: E731
    assert campaign.pk not in checked() and campaign.pk not in checked()
    with django_capture_on_commit_callbacks(execute=True):
        member_set(campaign=campaign, user=rater, role=Role.RATER, actor=admin_user)
    assert checked()[campaign.pk] == Role.RATER
    with django_capture_on_commit_callbacks(execute=True):
        member_remove(campaign=campaign, user=rater, actor=admin_user)
    assert campaign.pk not in checked()
    assert not CampaignMember.objects.filter(campaign=campaign, user=rater).exists()


def test_times_written_announce_nothing(rater, token_cache_on, django_capture_on_commit_callbacks):
    """A login's time or a token's use is no credential: saving only those keeps every token."""
    _, key = api_token_issue(user=rater)
    client_with(key).get(NEXT)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        rater.last_login = timezone.now()
        rater.save(update_fields=["last_login"])
    assert not callbacks and len(token_cache_on) == 1


def test_another_process_announcement_is_heard(rater, token_cache_on, redis_url):
    """A change announced on the channel by another process (a message on Redis) empties this process's cache."""
    _, key = api_token_issue(user=rater)
    client_with(key).get(NEXT)
    assert len(token_cache_on) == 1
    other = redis.Redis.from_url(redis_url)
    other.publish(token_cache.CHANNEL, "changed")
    other.close()
    wait_until(lambda: len(token_cache_on) == 0, timeout=10, what="the announcement heard", poll=0.02)


def test_without_redis_every_call_reads_the_database(rater, token_cache_on, settings):
    """When Redis goes away the listener cannot hear changes: the process forgets what it kept and keeps nothing more."""
    _, key = api_token_issue(user=rater)
    client = client_with(key)
    client.get(NEXT)
    redis.Redis.from_url(settings.REDIS_URL).shutdown(nosave=True)
    wait_until(lambda: not token_cache_on.listening, timeout=10, what="the listener noticing that Redis went away", poll=0.02)
    assert len(token_cache_on) == 0
    assert [token_reads(lambda: client.get(NEXT))[1] for _ in range(2)] == [1, 1]


def test_a_row_read_while_a_change_is_announced_is_not_kept(rater, monkeypatch):
    """The row read just before an announcement may be stale: it answers this call and is not kept."""
    _, key = api_token_issue(user=rater)
    cache = token_cache.TokenCache(redis_url="redis://unused", max_age=60)
    cache.listening = True  # as if subscribed (no thread: the announcement is made by hand)
    read = token_cache.api_token_row

    def read_then_announced(*, digest):
        row = read(digest=digest)
        cache.forget()
        return row

    monkeypatch.setattr(token_cache, "api_token_row", read_then_announced)
    assert cache.token(key=key).user_id == rater.pk
    assert len(cache) == 0


def test_a_kept_token_is_read_again_after_its_age(rater, monkeypatch):
    """Nothing is kept past API_TOKEN_CACHE_SECONDS: the bound on a change whose announcement Redis lost."""
    _, key = api_token_issue(user=rater)
    cache = token_cache.TokenCache(redis_url="redis://unused", max_age=60)
    cache.listening = True
    now = [1000.0]
    monkeypatch.setattr(token_cache.time, "monotonic", lambda: now[0])
    assert token_reads(lambda: cache.token(key=key))[1] == 1
    now[0] += 59
    assert token_reads(lambda: cache.token(key=key))[1] == 0
    now[0] += 2
    assert token_reads(lambda: cache.token(key=key))[1] == 1


def test_the_oldest_used_token_goes_first(make_user):
    """The cache holds at most max_entries tokens, dropping the one used least recently."""
    cache = token_cache.TokenCache(redis_url="redis://unused", max_age=60, max_entries=2)
    cache.listening = True
    keys = [api_token_issue(user=make_user(Role.RATER))[1] for _ in range(3)]
    cache.token(key=keys[0])
    cache.token(key=keys[1])
    cache.token(key=keys[0])  # used again: the second is now the oldest used
    cache.token(key=keys[2])
    assert token_reads(lambda: cache.token(key=keys[0]))[1] == 0
    assert token_reads(lambda: cache.token(key=keys[1]))[1] == 1


def test_a_kept_token_is_touched_once_a_minute(rater, token_cache_on):
    """The time of use is written at most once a minute, kept rows included (the cache learns the time written)."""
    token, key = api_token_issue(user=rater)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    client = client_with(key)
    writes = []
    for _ in range(3):
        response, seen = statements_of(lambda: client.get(NEXT))
        assert response.status_code == 204
        writes.append(sum(1 for sql in seen if sql.startswith(f'UPDATE "{TOKEN_TABLE}"')))
    assert writes == [1, 0, 0]


def test_a_change_with_no_redis_to_tell_is_not_an_error(rater, settings, caplog, django_capture_on_commit_callbacks):
    """No Redis answering means no process listens there, so none keeps a token: the change commits, and is only noted."""
    import logging

    settings.API_TOKEN_CACHE_SECONDS, settings.REDIS_URL = 60, "redis://127.0.0.1:1/0"
    with caplog.at_level(logging.DEBUG, logger="feedback_app.events"), django_capture_on_commit_callbacks(execute=True):
        rater.is_active = False
        rater.save()
    assert [r.levelname for r in caplog.records if r.name == "feedback_app.events"] == ["DEBUG"]
