"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools

import pytest

from feedback_app.models import Comparison, Prompt, Response, Role


@pytest.fixture(autouse=True)
def _isolated_services(settings, tmp_path):
    """Keep each test off the real Redis and the real model store."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MODEL_STORE = tmp_path / "models"
    settings.REFIT_EVERY_N_LABELS = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


_names = itertools.count(1)


@pytest.fixture
def make_user(db):
    from feedback_app.services.accounts import user_create

    def make(role: Role = Role.RATER, username: str | None = None):
        user, _, _ = user_create(username=username or f"{role.value}{next(_names)}", role=role, password="correct horse battery staple")
        return user

    return make


@pytest.fixture
def rater(make_user):
    return make_user(Role.RATER)


@pytest.fixture
def researcher(make_user):
    return make_user(Role.RESEARCHER)


@pytest.fixture
def admin_user(make_user):
    return make_user(Role.ADMIN)


@pytest.fixture
def make_comparisons(db):
    def make(n: int = 1, *, required_labels: int = 1, tags: tuple[str, ...] = ()) -> list[Comparison]:
        from feedback_app.models import Tag

        made = []
        for i in range(n):
            prompt = Prompt.objects.create(text=f"Where is my order #{1000 + i}?", source="test")
            for name in tags:
                prompt.tags.add(Tag.objects.get_or_create(name=name)[0])
            a = Response.objects.create(prompt=prompt, text=f"It ships tomorrow (order {i}).")
            b = Response.objects.create(prompt=prompt, text=f"Please wait (order {i}).")
            made.append(Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=required_labels))
        return made

    return make


def api_client_for(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
