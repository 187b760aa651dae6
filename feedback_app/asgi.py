"""The ASGI entry point: HTTP through Django, websockets through Channels."""

import os
from urllib.parse import urlsplit

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_app.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does


from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402
from django.utils.http import is_same_domain  # noqa: E402

from feedback_app.middleware.shed import LoadShedding  # noqa: E402
from feedback_app.request_threads import KeptThreadsHandler, collector_tuned  # noqa: E402
from feedback_app.routing import websocket_urlpatterns  # noqa: E402

_DEFAULT_PORTS = {"http": 80, "https": 443}

django_asgi_app = KeptThreadsHandler(threads=settings.WEB_THREADS, lane_wait=settings.LABELING_LANE_WAIT_MS / 1000)


def websocket_origin_allowed(scope: dict) -> bool:
    """Return whether a websocket's Origin is the site it connects to: same host and port as
    its Host header (a host in ALLOWED_HOSTS), or an origin in CSRF_TRUSTED_ORIGINS."""
    headers = {name.lower(): value.decode("latin1") for name, value in scope.get("headers", [])}
    origin = headers.get(b"origin", "").strip().lower()
    try:
        parsed = urlsplit(origin)
        origin_port = parsed.port
    except ValueError:  # a port that is not a number
        return False
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.hostname:
        return False  # a missing Origin, "null" (sandboxed or file pages), or not a web page
    if _trusted(origin, parsed.netloc):
        return True
    domain, port = split_domain_port(headers.get(b"host", ""))
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    # Browsers leave the scheme's default port out of both headers; compare what they would send.
    default = _DEFAULT_PORTS[parsed.scheme]
    origin_port = None if origin_port in (None, default) else origin_port
    host_port = None if port in ("", str(default)) else port
    return parsed.hostname == domain.strip("[]") and str(origin_port) == str(host_port)


def _trusted(origin: str, netloc: str) -> bool:
    # The same rules as Django's CSRF check: exact origins, or "scheme://*.domain" for subdomains.
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        trusted = trusted.lower().rstrip("/")
        if "*" not in trusted and trusted == origin.rstrip("/"):
            return True
        scheme, _, pattern = trusted.partition("://*")
        if "*" in trusted and origin.startswith(scheme + "://") and is_same_domain(netloc, pattern):
            return True
    return False


class SameOriginValidator:
    """Refuse a websocket whose Origin is not this site (``websocket_origin_allowed``)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not websocket_origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": LoadShedding(django_asgi_app, max_in_flight=settings.HTTP_MAX_IN_FLIGHT),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

collector_tuned(settings.WEB_GC_THRESHOLD)  # last: what the lines above made is frozen with the rest
