"""API tokens: a username and password buy a new token, shown once; the token itself can revoke itself."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback_app.api.authentication import TokenAuthentication
from feedback_app.models import ApiToken
from feedback_app.services.accounts import api_token_issue, api_token_revoke


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class IssuedTokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The key: send it as `Authorization: Token <key>`. It is shown only now.")
    prefix = serializers.CharField()
    created_at = serializers.DateTimeField()


class TokenView(APIView):
    authentication_classes = [TokenAuthentication]

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else [AllowAny()]

    @extend_schema(request=TokenRequestSerializer, responses={201: IssuedTokenSerializer, 400: OpenApiResponse(description="Missing fields or wrong credentials.")})
    def post(self, request: Request) -> Response:
        """Issue a new token for the user whose username and password these are."""
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request=request._request, username=data.validated_data["username"], password=data.validated_data["password"])
        if user is None:
            raise exceptions.ValidationError({"non_field_errors": ["Unable to log in with the username and password given."]})
        token, key = api_token_issue(user=user, actor=user)
        body = IssuedTokenSerializer({"token": key, "prefix": token.prefix, "created_at": token.created_at}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses={204: None, 400: OpenApiResponse(description="Not authenticated by a token.")})
    def delete(self, request: Request) -> Response:
        """Revoke the token this request is authenticated with."""
        if not isinstance(request.auth, ApiToken):
            raise exceptions.ValidationError({"authorization": ["Send the token to revoke as `Authorization: Token <key>`."]})
        api_token_revoke(token=request.auth, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
