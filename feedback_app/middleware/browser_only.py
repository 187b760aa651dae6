"""Django's session, CSRF, session-user and message middleware, left out of an API call made with a token and no cookie.

Most requests a studio serves are a rater's label calls, made with an API token (``Authorization: Token ...``) and no
cookie. For them these four read nothing and add nothing to the answer:

- **sessions**: no cookie, so no session to load, and the API never writes one;
- **CSRF**: a forged request rides on credentials the browser sends by itself (cookies), and this call carries none; every
  API view is exempt from Django's check anyway (DRF's views, and ``api.label_direct``'s), DRF checks it itself for a call
  authenticated by its session;
- **the user from the session**: the token's authentication sets ``request.user`` (DRF's, and ``api.label_direct``'s);
- **messages**: a JSON answer shows none.

Yet each one ran for every call: the message storage alone was built for each (measured in ``bench/README.md``, session
42). Here each is its Django class, unchanged for every other request (a browser's page, an API call with a cookie, one
without a token); for a token's API call without a cookie it hands the request straight on. They stay subclasses of
Django's own, where the admin's checks look for them.
"""

from __future__ import annotations

from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware as _CsrfViewMiddleware

API_PREFIX = "/api/"
_TOKEN = "token "  # DRF's TokenAuthentication reads the keyword without regard to case


def token_call(request) -> bool:
    """Whether ``request`` is an API call with a token and no cookie (an empty ``Cookie`` header carries none; Django's test
    client sends one), worked out once a request."""
    found = request.__dict__.get("_token_call")
    if found is None:
        meta = request.META
        found = request._token_call = (request.path_info.startswith(API_PREFIX) and not meta.get("HTTP_COOKIE")
                                       and meta.get("HTTP_AUTHORIZATION", "")[:len(_TOKEN)].lower() == _TOKEN)
    return found


class _BrowserOnly:
    """Hand a token's API call without a cookie straight on; run the Django middleware for every other request."""

    def __call__(self, request):
        if token_call(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_BrowserOnly, _SessionMiddleware):
    pass


class CsrfViewMiddleware(_BrowserOnly, _CsrfViewMiddleware):
    def process_view(self, request, callback, callback_args, callback_kwargs):
        if token_call(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(_BrowserOnly, _AuthenticationMiddleware):
    pass


class MessageMiddleware(_BrowserOnly, _MessageMiddleware):
    pass
