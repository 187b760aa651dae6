"""A web process keeps the tokens it checked, and forgets them when another process announces a change over Redis."""

import time
import urllib.error
import urllib.request

import pytest
from django.utils import timezone

from feedback_app import events
from feedback_app.models import ApiToken, Role
from feedback_app.services.accounts import api_token_issue, api_token_revoke
from tests.conftest import wait_until

DEADLINE_S = 15  # generous: a bound on a slow machine, not a timing being measured


def status_of(url: str, key: str) -> int:
    request = urllib.request.Request(f"{url}/api/v1/comparisons/next/", headers={"Authorization": f"Token {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def live_server_keeping_tokens(token_cache_on, asgi_live_server):
    """The live server, forked with the token cache on and the test's Redis (token_cache_on comes first)."""
    return asgi_live_server


def kept_by_the_server(url: str, token: ApiToken, key: str) -> None:
    """Wait until the server answers for ``token`` from memory: revoked in the database without an announcement, it is still
    let through (the server's listener subscribes on its first API call)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert status_of(url, key) == 204
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())  # a write nobody announces
        if status_of(url, key) == 204:
            return
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=None)
        assert time.monotonic() < deadline, "the server never kept the token"
        time.sleep(0.1)


def test_a_change_announced_by_another_process_is_heard_by_the_server(live_server_keeping_tokens, make_user):
    """The server keeps a token (a silent revocation does not reach it), and forgets it when this process announces a change."""
    token, key = api_token_issue(user=make_user(Role.RATER))
    kept_by_the_server(live_server_keeping_tokens, token, key)
    events.api_credentials_changed()  # autocommit here: announced at once
    wait_until(lambda: status_of(live_server_keeping_tokens, key) == 401, timeout=DEADLINE_S, what="the token refused after the change", poll=0.05)


def test_a_token_revoked_in_another_process_is_refused_by_the_server(live_server_keeping_tokens, make_user):
    """Revoked through the service in this process, a token the server kept is refused there too."""
    token, key = api_token_issue(user=make_user(Role.RATER))
    kept_by_the_server(live_server_keeping_tokens, token, key)
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=None)
    token.refresh_from_db()
    assert api_token_revoke(token=token)
    wait_until(lambda: status_of(live_server_keeping_tokens, key) == 401, timeout=DEADLINE_S, what="the token refused after the change", poll=0.05)
