"""The websocket Origin check: the page's own host and port, or a trusted origin."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from feedback_app.asgi import application, websocket_origin_allowed


def scope(origin: str | None, host: str | None) -> dict:
    headers = [(b"origin", origin.encode())] if origin is not None else []
    headers += [(b"host", host.encode())] if host is not None else []
    return {"type": "websocket", "scheme": "ws", "headers": headers}


@pytest.mark.parametrize("origin, host", [
    ("http://127.0.0.1:8000", "127.0.0.1:8000"),
    ("http://localhost", "localhost"),
    ("http://localhost:80", "localhost"),
    ("https://localhost", "localhost"),
    ("https://localhost", "localhost:443"),
    ("HTTP://LOCALHOST:8000", "localhost:8000"),
    ("http://[::1]:8000", "[::1]:8000"),
])
def test_the_same_host_and_port_is_allowed(settings, origin, host):
    assert websocket_origin_allowed(scope(origin, host))


@pytest.mark.parametrize("origin, host", [
    ("http://127.0.0.1:9999", "127.0.0.1:8000"),  # another local service on the same host
    ("http://127.0.0.1", "127.0.0.1:8000"),
    ("http://127.0.0.1:8000", "127.0.0.1"),
    ("https://localhost", "localhost:80"),
    ("http://evil.example", "127.0.0.1"),
    ("http://localhost.evil.example:8000", "localhost:8000"),
    ("http://evil.example:8000", "evil.example:8000"),  # not in ALLOWED_HOSTS
    ("null", "localhost"),
    ("file://", "localhost"),
    ("http://localhost:notaport", "localhost"),
    (None, "localhost"),
    ("http://localhost", None),
])
def test_any_other_origin_is_refused(settings, origin, host):
    assert not websocket_origin_allowed(scope(origin, host))


def test_trusted_origins_pass_behind_a_proxy_that_rewrites_host(settings):
    """CSRF_TRUSTED_ORIGINS entries pass whatever the Host header says, with Django's wildcard rule."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://studio.example.org", "https://*.labs.example.org"]
    assert websocket_origin_allowed(scope("https://studio.example.org", "127.0.0.1:8000"))
    assert websocket_origin_allowed(scope("https://a.labs.example.org", "127.0.0.1:8000"))
    assert not websocket_origin_allowed(scope("http://studio.example.org", "127.0.0.1:8000"))
    assert not websocket_origin_allowed(scope("https://studio.example.org:8443", "127.0.0.1:8000"))
    assert not websocket_origin_allowed(scope("https://evil-labs.example.org", "127.0.0.1:8000"))


@pytest.mark.django_db(transaction=True)
def test_the_whole_stack_refuses_a_different_port(researcher):
    """Through the ASGI application: same port connects, another port is refused at the handshake."""
    client = Client()
    client.force_login(researcher)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    async def connects(origin: bytes) -> bool:
        headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000"), cookie]
        communicator = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(connects)(b"http://127.0.0.1:8000")
    assert not async_to_sync(connects)(b"http://127.0.0.1:8001")
