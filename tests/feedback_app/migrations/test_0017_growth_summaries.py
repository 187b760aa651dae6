"""Migration 0017: comparisons that already hold a flagged label, or raters' votes with no two-thirds answer, get their review marks."""

import importlib

import pytest
from django.apps import apps

from feedback_app.models import Comparison, PreferenceLabel

pytestmark = pytest.mark.django_db
migration = importlib.import_module("feedback_app.migrations.0017_growth_summaries")


def test_existing_labels_give_the_review_marks(make_user, make_comparisons):
    flagged, split, calm, gold, imported = make_comparisons(5, required_labels=3)
    raters = [make_user() for _ in range(3)]
    PreferenceLabel.objects.create(comparison=flagged, rater=raters[0], winner="a", flags=["spam"])
    for comparison, winners in ((split, "abt"), (calm, "aab"), (gold, "ab")):
        for rater, w in zip(raters, winners):
            PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner={"t": "tie"}.get(w, w))
    Comparison.objects.filter(pk=gold.pk).update(is_gold=True)
    for _ in range(2):  # imported labels have no rater: they are no raters' dispute
        PreferenceLabel.objects.create(comparison=imported, winner="a" if _ else "b")
    migration.review_marks_fill(apps, None)
    marks = {c.pk: (c.flagged, c.disputed) for c in Comparison.objects.all()}
    assert marks == {flagged.pk: (True, False), split.pk: (False, True), calm.pk: (False, False), gold.pk: (False, False),
                     imported.pk: (False, False)}
