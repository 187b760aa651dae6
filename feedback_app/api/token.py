"""POST /api/v1/auth/token/: trade a username and password for the account's API token."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback_app.api.parsers import StrictJSONParser
from feedback_app.api.schema import errors
from feedback_app.api.serializers import StrictCharField


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField(min_length=1, max_length=150, trim_whitespace=False)
    password = StrictCharField(min_length=1, max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class TokenObtainView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [StrictJSONParser, FormParser]

    @extend_schema(
        summary="Get the API token of an account",
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, **errors(400, 429, e429="Too many failed logins for this account or address; Retry-After says when to try again."),
                   401: OpenApiResponse(description="The username and password do not match an active account.")},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The Django request, not DRF's wrapper: django-axes marks a lockout on it for its middleware.
        user = authenticate(request._request, **serializer.validated_data)
        if user is None:
            return Response({"detail": "unable to log in with that username and password"}, status=status.HTTP_401_UNAUTHORIZED)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
