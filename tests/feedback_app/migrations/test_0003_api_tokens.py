import importlib

import pytest
from django.apps import apps
from django.db import connection
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db(transaction=True)
migration = importlib.import_module("feedback_app.migrations.0003_api_tokens")


def test_legacy_drf_tokens_keep_working_and_lose_their_plaintext(rater):
    """A key from DRF's authtoken table still authenticates after the migration; the table is emptied."""
    key = "0123456789abcdef0123456789abcdef01234567"
    with connection.schema_editor() as editor:
        editor.execute('CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created timestamp with time zone NOT NULL, user_id bigint NOT NULL)'
                       if connection.vendor == "postgresql" else
                       'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created datetime NOT NULL, user_id bigint NOT NULL)')
    try:
        with connection.cursor() as cursor:
            cursor.execute('INSERT INTO authtoken_token ("key", created, user_id) VALUES (%s, %s, %s)', [key, "2025-01-02 03:04:05+00:00", rater.pk])
        with connection.schema_editor() as editor:
            migration.hash_legacy_tokens(apps, editor)
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0
        token = rater.api_tokens.get(prefix=key[:8])
        assert token.created_at.year == 2025
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.get("/api/v1/comparisons/next/").status_code == 204
    finally:
        with connection.schema_editor() as editor:
            editor.execute("DROP TABLE authtoken_token")


def test_without_the_legacy_table_nothing_happens(db):
    with connection.schema_editor() as editor:
        migration.hash_legacy_tokens(apps, editor)
