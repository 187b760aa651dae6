"""Migration 0019: each comparison's row counts the leases that hold its slots when the migration runs."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from feedback_app.models import Assignment, Comparison

pytestmark = pytest.mark.django_db
migration = importlib.import_module("feedback_app.migrations.0019_comparison_leases_held")


class _Editor:
    connection = connection


def test_the_leases_held_are_counted_into_their_comparisons(make_user, make_comparisons):
    two, expired, labelled, free = make_comparisons(4, required_labels=3)
    now = timezone.now()

    def lease(comparison, rater, *, expires, status=Assignment.Status.LEASED):
        Assignment.objects.create(comparison=comparison, rater=rater, a_on_left=True, status=status, leased_at=now,
                                  lease_expires_at=now + expires)

    r1, r2 = make_user(), make_user()
    lease(two, r1, expires=timedelta(minutes=5))
    lease(two, r2, expires=timedelta(minutes=9))
    lease(expired, r1, expires=-timedelta(minutes=1))
    lease(labelled, r1, expires=timedelta(minutes=5), status=Assignment.Status.SUBMITTED)
    migration.count_held_leases(apps, _Editor())
    rows = {c.pk: (c.leases_held, c.leases_recount_at) for c in Comparison.objects.all()}
    assert rows == {two.pk: (2, now + timedelta(minutes=5)), expired.pk: (0, None), labelled.pk: (0, None), free.pk: (0, None)}
