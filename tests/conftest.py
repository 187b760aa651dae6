"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools
import os

# Nothing in the tests may reach a model or dataset hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

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


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def asgi_live_server(transactional_db):
    """Serve the site with daphne (the real ASGI stack) in a child process, on the test database."""
    from functools import partial

    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.db import connections

    # The server is forked from this process, whose settings already name the test database;
    # close our connections first so the child does not inherit (and share) an open socket.
    connections.close_all()
    process = DaphneProcess("127.0.0.1", partial(make_application, static_wrapper=ASGIStaticFilesHandler))
    process.start()
    if not process.ready.wait(timeout=60):
        process.terminate()
        raise RuntimeError("the live server did not start in 60 s")
    yield f"http://127.0.0.1:{process.port.value}"
    process.terminate()
    process.join(timeout=10)
    _drop_other_sessions()


def _drop_other_sessions() -> None:
    """End database sessions a killed child left behind, so the test database can be dropped."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def browser(monkeypatch):
    """A headless Debian Chromium driven by Playwright; skipped (or failed, in CI) when absent."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs the Debian package chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
