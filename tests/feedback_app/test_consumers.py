"""Websocket consumers through the whole ASGI stack: session cookie, origin check, roles, groups."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from feedback_app import events
from feedback_app.asgi import application
from feedback_app.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from feedback_app.models import PolicyVersion

pytestmark = pytest.mark.django_db(transaction=True)


def headers_for(user=None) -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


async def connect(path: str, user=None) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(application, path, headers=await sync_to_async(headers_for)(user))
    connected, code = await communicator.connect()
    return communicator, connected, code


def test_anonymous_and_wrong_roles_are_refused(rater):
    async def scenario():
        for path in ("/ws/dashboard/", "/ws/rater/"):
            communicator, connected, code = await connect(path)
            assert not connected and code == CLOSE_UNAUTHENTICATED
        communicator, connected, code = await connect("/ws/dashboard/", rater)
        assert not connected and code == CLOSE_FORBIDDEN

    async_to_sync(scenario)()


def test_a_foreign_origin_is_refused(researcher):
    async def scenario():
        headers = [(b"origin", b"http://evil.example"), *[h for h in await sync_to_async(headers_for)(researcher) if h[0] != b"origin"]]
        communicator = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
        connected, _ = await communicator.connect()
        assert not connected

    async_to_sync(scenario)()


def test_dashboard_gets_current_state_on_connect_and_events_after_commit(researcher, make_comparisons):
    make_comparisons(3)

    async def scenario():
        communicator, connected, _ = await connect("/ws/dashboard/", researcher)
        assert connected
        state = await communicator.receive_from(timeout=5)
        assert 'id="counters"' in state and 'id="training-run"' in state
        assert 'data-testid="open-comparisons">3<' in state
        await sync_to_async(events.dashboard_push)()
        pushed = await communicator.receive_from(timeout=5)
        assert 'id="counters"' in pushed
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_policy_swap_reaches_raters_after_commit_and_a_reconnect_reads_the_database(rater, monkeypatch):
    from django.db import transaction

    from feedback_app import tasks
    from feedback_app.services.versions import version_activate

    monkeypatch.setattr(tasks.comparisons_supply, "delay", lambda: None)
    old = PolicyVersion.objects.create(name="policy-old", path="policy/policy-old", status="active")
    new = PolicyVersion.objects.create(name="policy-new", path="policy/policy-new", parent=old)

    def swap(rolled_back: bool):
        with transaction.atomic():
            version_activate(version=new, user=None, action="promote")
            if rolled_back:
                transaction.set_rollback(True)

    async def scenario():
        communicator, connected, _ = await connect("/ws/rater/", rater)
        assert connected
        state = await communicator.receive_from(timeout=5)
        assert "policy-old" in state and 'id="today-count"' in state
        await sync_to_async(swap)(True)  # rolled back: nothing may be announced
        assert await communicator.receive_nothing(timeout=0.5)
        await sync_to_async(swap)(False)
        toast = await communicator.receive_from(timeout=5)
        assert 'data-testid="policy-toast"' in toast and "policy-new" in toast and 'id="policy-badge"' in toast
        await communicator.disconnect()
        # A client that missed the push (disconnected meanwhile) sees the truth when it comes back.
        again, connected, _ = await connect("/ws/rater/", rater)
        assert connected and "policy-new" in await again.receive_from(timeout=5)
        await again.disconnect()

    async_to_sync(scenario)()


def test_new_comparisons_notify_raters(rater, admin_user):
    from feedback_app.services.imports import prompts_import

    async def scenario():
        communicator, connected, _ = await connect("/ws/rater/", rater)
        assert connected
        await communicator.receive_from(timeout=5)
        await sync_to_async(prompts_import)(data=b'{"prompt": "Hi", "responses": ["a", "b"]}', filename="p.jsonl")
        notice = await communicator.receive_from(timeout=5)
        assert 'id="queue-notice"' in notice and 'hx-get="/label/"' in notice
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_an_idle_socket_outlives_the_redis_timeouts(rater, redis_channel_layer):
    """A socket idle past the layer's blocking-pop timeout and the Redis client's socket timeout
    stays open and still gets the next push."""
    from channels_redis.core import RedisChannelLayer

    idle = RedisChannelLayer.brpop_timeout + 7

    async def scenario():
        communicator, connected, _ = await connect("/ws/rater/", rater)
        assert connected
        await communicator.receive_from(timeout=5)
        assert await communicator.receive_nothing(timeout=idle)
        await sync_to_async(events.broadcast)("raters", "queue.changed", '<div id="queue-notice">new</div>')
        assert "queue-notice" in await communicator.receive_from(timeout=5)
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_socket_closes_when_its_session_logs_out(rater):
    """Logging out closes that session's sockets; the user's other sessions keep theirs."""
    async def scenario():
        client = await sync_to_async(Client)()
        await sync_to_async(client.force_login)(rater)
        cookie = client.cookies["sessionid"].value
        base = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
        mine = WebsocketCommunicator(application, "/ws/rater/", headers=[*base, (b"cookie", f"sessionid={cookie}".encode())])
        assert (await mine.connect())[0]
        await mine.receive_from(timeout=5)
        other, connected, _ = await connect("/ws/rater/", rater)
        assert connected
        await other.receive_from(timeout=5)
        await sync_to_async(client.post)("/logout/")
        assert (await mine.receive_output(timeout=5)) == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}
        assert await other.receive_nothing(timeout=0.5)
        await other.disconnect()

    async_to_sync(scenario)()


def test_a_socket_closes_when_its_user_loses_the_role(researcher):
    """A researcher demoted to rater loses the dashboard socket at once, and the rater socket stays."""
    from feedback_app.models import Profile, Role
    from feedback_app.services.accounts import role_group_sync

    def demote():
        Profile.objects.filter(user=researcher).update(role=Role.RATER)
        role_group_sync(user=researcher, role=Role.RATER)

    async def scenario():
        dashboard, connected, _ = await connect("/ws/dashboard/", researcher)
        assert connected
        await dashboard.receive_from(timeout=5)
        rater_socket, connected, _ = await connect("/ws/rater/", researcher)
        assert connected
        await rater_socket.receive_from(timeout=5)
        await sync_to_async(demote)()
        assert (await dashboard.receive_output(timeout=5)) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
        assert await rater_socket.receive_nothing(timeout=0.5)
        await rater_socket.disconnect()

    async_to_sync(scenario)()


def test_a_campaign_s_rater_socket_takes_only_its_members_and_counts_its_labels(make_user, admin_user):
    from feedback_app.models import Role
    from feedback_app.services.campaigns import campaign_create, member_set

    billing = campaign_create(slug="billing", name="Billing")
    member = make_user(Role.RATER)
    member_set(campaign=billing, user=member, role=Role.RATER)
    outsider = make_user(Role.RATER)  # in the default campaign only

    async def scenario():
        communicator, connected, _ = await connect("/ws/c/billing/rater/", member)
        assert connected and 'id="today-count">0<' in await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        for path, user in (("/ws/rater/", member), ("/ws/c/billing/rater/", outsider), ("/ws/c/nope/rater/", admin_user)):
            communicator, connected, code = await connect(path, user)
            assert not connected and code == CLOSE_FORBIDDEN, path

    async_to_sync(scenario)()
