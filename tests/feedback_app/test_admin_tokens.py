import hashlib
import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from feedback_app.models import ApiToken
from feedback_app.services.accounts import api_token_issue

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_list_shows_prefixes_never_keys(admin_user, rater):
    """The changelist names each token by its prefix; neither key nor digest appears."""
    token, key = api_token_issue(user=rater)
    html = logged_in(admin_user).get(reverse("admin:feedback_app_apitoken_changelist")).content.decode()
    assert token.prefix in html and key not in html and token.digest not in html


def test_issuing_a_token_shows_its_key_once(admin_user, rater):
    """The add page issues a token through the service; the key is in one message, then gone."""
    client = logged_in(admin_user)
    response = client.post(reverse("admin:feedback_app_apitoken_add"), {"user": rater.pk}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"] if "New API token" in str(m)]
    assert len(shown) == 1
    key = re.search(r"New API token for \S+: (\w+)", shown[0]).group(1)
    assert ApiToken.objects.filter(user=rater, digest=hashlib.sha256(key.encode()).hexdigest()).exists()
    assert key not in client.get(reverse("admin:feedback_app_apitoken_changelist")).content.decode()


def test_the_revoke_action_takes_effect_at_once(admin_user, rater):
    token, key = api_token_issue(user=rater)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/comparisons/next/").status_code == 204
    response = logged_in(admin_user).post(
        reverse("admin:feedback_app_apitoken_changelist"), {"action": "revoke_tokens", "_selected_action": [token.pk]}, follow=True
    )
    assert any("Revoked 1 token" in str(m) for m in get_messages(response.wsgi_request)) or b"Revoked 1 token" in response.content
    assert api.get("/api/v1/comparisons/next/").status_code == 401


def test_researchers_cannot_see_tokens(researcher):
    assert logged_in(researcher).get(reverse("admin:feedback_app_apitoken_changelist")).status_code == 403


def test_the_user_list_action_issues_a_token_per_user_shown_once(admin_user, rater, researcher):
    response = logged_in(admin_user).post(
        reverse("admin:auth_user_changelist"), {"action": "issue_api_tokens", "_selected_action": [rater.pk, researcher.pk]}, follow=True
    )
    shown = [str(m) for m in response.context["messages"] if "New API token" in str(m)]
    assert len(shown) == 2
    keys = [re.search(r"New API token for \S+: (\w+)", message).group(1) for message in shown]
    digests = [hashlib.sha256(key.encode()).hexdigest() for key in keys]
    assert {token.user for token in ApiToken.objects.filter(digest__in=digests)} == {rater, researcher}
