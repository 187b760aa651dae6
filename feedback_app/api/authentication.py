"""API authentication: ``Authorization: Token <key>`` against hashed, revocable keys."""

from rest_framework import authentication, exceptions

from feedback_app.models import ApiToken
from feedback_app.selectors.token_cache import api_token_checked, api_token_used
from feedback_app.services.accounts import api_token_touch


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token header, checked against the key's digest with the user's role read in the same query; a web process
    keeps what it read until a credential changes anywhere (``selectors.token_cache``), so a revocation takes effect on
    the next request."""

    model = ApiToken

    def authenticate_credentials(self, key):
        token = api_token_checked(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        used = token.last_used_at
        api_token_touch(token=token)
        if token.last_used_at != used:
            api_token_used(token=token)
        return token.user, token
