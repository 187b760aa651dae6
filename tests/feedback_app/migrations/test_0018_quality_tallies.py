"""Migration 0018: imported labelled pairs, complete without a completion time, get their creation's."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from feedback_app.models import Comparison

pytestmark = pytest.mark.django_db
migration = importlib.import_module("feedback_app.migrations.0018_quality_tallies")


def test_complete_comparisons_without_a_completion_time_get_their_creation_time(make_comparisons):
    imported, labelled, open_ = make_comparisons(3)
    earlier = timezone.now() - timedelta(days=3)
    Comparison.objects.filter(pk=imported.pk).update(status="complete", completed_at=None, created_at=earlier)
    Comparison.objects.filter(pk=labelled.pk).update(status="complete", completed_at=earlier + timedelta(hours=1))
    migration.imported_pairs_completed(apps, None)
    completed = dict(Comparison.objects.values_list("pk", "completed_at"))
    assert completed == {imported.pk: earlier, labelled.pk: earlier + timedelta(hours=1), open_.pk: None}
