"""API authentication: ``Authorization: Token <key>`` against hashed, revocable keys."""

from rest_framework import authentication, exceptions

from feedback_app.models import ApiToken
from feedback_app.selectors.accounts import api_token_valid
from feedback_app.services.accounts import api_token_touch


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token header, checked against the key's digest on every request (nothing cached,
    so a revocation takes effect on the next request), reading the user's role in the same query."""

    model = ApiToken

    def authenticate_credentials(self, key):
        token = api_token_valid(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        api_token_touch(token=token)
        return token.user, token
