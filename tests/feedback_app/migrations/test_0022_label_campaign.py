"""Migration 0022: every existing label gets its comparison's campaign."""

import importlib

import pytest
from django.apps import apps
from django.db import connection

from feedback_app.models import Campaign, Comparison, PreferenceLabel, Prompt, Response

pytestmark = pytest.mark.django_db
migration = importlib.import_module("feedback_app.migrations.0022_label_campaign")


class _Editor:
    connection = connection

    @staticmethod
    def execute(sql, params=()):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def test_each_label_gets_its_comparisons_campaign():
    other = Campaign.objects.create(slug="other", name="Other")
    expected = {}
    for campaign_id in (1, other.pk, other.pk):
        prompt = Prompt.objects.create(text=f"Request in {campaign_id}", campaign_id=campaign_id)
        a, b = Response.objects.create(prompt=prompt, text="yes"), Response.objects.create(prompt=prompt, text="no")
        label = PreferenceLabel.objects.create(comparison=Comparison.objects.create(prompt=prompt, response_a=a, response_b=b), winner="a")
        expected[label.pk] = campaign_id
    PreferenceLabel.objects.update(campaign_id=987654)  # as before the migration: no campaign of their own (here: a wrong one)
    migration.campaigns_copy(apps, _Editor())
    assert dict(PreferenceLabel.objects.values_list("pk", "campaign_id")) == expected
