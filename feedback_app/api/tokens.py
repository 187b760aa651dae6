"""API tokens: a username and password buy a new token, shown once; the token itself can revoke itself."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback_app.api.authentication import TokenAuthentication
from feedback_app.api.parsers import StrictJSONParser
from feedback_app.api.schema import errors
from feedback_app.api.serializers import StrictCharField
from feedback_app.models import ApiToken
from feedback_app.services.accounts import api_token_issue, api_token_revoke


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField(min_length=1, max_length=150, trim_whitespace=False)
    password = StrictCharField(min_length=1, max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class IssuedTokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The key: send it as `Authorization: Token <key>`. It is shown only now.")
    prefix = serializers.CharField()
    created_at = serializers.DateTimeField()


class TokenView(APIView):
    authentication_classes = [TokenAuthentication]
    parser_classes = [StrictJSONParser, FormParser]

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else [AllowAny()]

    @extend_schema(
        summary="Issue a new API token for an account (shown once)",
        request=TokenRequestSerializer,
        responses={201: IssuedTokenSerializer, **errors(400, 429, e429="Too many failed logins for this account or address; Retry-After says when to try again."),
                   401: OpenApiResponse(description="The username and password do not match an active account.")},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        """Issue a new token for the user whose username and password these are."""
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # The Django request, not DRF's wrapper: django-axes marks a lockout on it for its middleware.
        user = authenticate(request._request, username=data.validated_data["username"], password=data.validated_data["password"])
        if user is None:
            return Response({"detail": "unable to log in with that username and password"}, status=status.HTTP_401_UNAUTHORIZED)
        token, key = api_token_issue(user=user, actor=user)
        body = IssuedTokenSerializer({"token": key, "prefix": token.prefix, "created_at": token.created_at}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(summary="Revoke the token this request is authenticated with", request=None,
                   responses={204: None, **errors(400, 401, 403, e400="Not authenticated by a token.")})
    def delete(self, request: Request) -> Response:
        """Revoke the token this request is authenticated with."""
        if not isinstance(request.auth, ApiToken):
            raise exceptions.ValidationError({"authorization": ["Send the token to revoke as `Authorization: Token <key>`."]})
        api_token_revoke(token=request.auth, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
