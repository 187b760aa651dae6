"""The campaign's rules kept per process (``campaign_cached``): the row's values kept, a fresh instance made at every call."""

import pickle

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from feedback_app.models import Campaign
from feedback_app.selectors import campaigns, rows
from feedback_app.selectors.campaigns import campaign_cache_forget, campaign_cached, campaign_get

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_a_kept_campaign_is_made_afresh_at_each_call_with_every_field_of_its_row():
    campaign = Campaign.objects.create(slug="kept", name="Kept", criteria=["tone"], flags=["unsafe"], refit_every_n_labels=7)
    first = campaign_cached(campaign_id=campaign.pk)
    with CaptureQueriesContext(connection) as queries:
        second = campaign_cached(campaign_id=campaign.pk)
    assert len(queries) == 0  # kept
    assert _fields(second) == _fields(first) == _fields(campaign_get(campaign_id=campaign.pk))
    assert second is not first and not second._state.adding and second._state.db == "default"
    second.criteria.append("changed in place")  # a caller's change to its copy is not another caller's
    second.name = "changed"
    third = campaign_cached(campaign_id=campaign.pk)
    assert third.criteria == ["tone"] and third.name == "Kept" and third.refit_every == 7


def test_a_forgotten_campaign_is_read_again_and_the_process_keeps_values_not_an_instance():
    campaign = Campaign.objects.create(slug="forgotten", name="Before")
    campaign_cached(campaign_id=campaign.pk)
    assert pickle.loads(campaigns._KEPT[campaign.pk][1]) == rows.values_of(campaign_get(campaign_id=campaign.pk))
    Campaign.objects.filter(pk=campaign.pk).update(name="After")
    assert campaign_cached(campaign_id=campaign.pk).name == "Before"  # as this process saw it, for CACHE_SECONDS
    campaign_cache_forget(campaign_id=campaign.pk)
    assert campaign_cached(campaign_id=campaign.pk).name == "After"


def test_a_kept_campaign_is_read_again_once_its_time_is_up(monkeypatch):
    campaign = Campaign.objects.create(slug="aged", name="Before")
    now = [1000.0]
    monkeypatch.setattr(campaigns, "monotonic", lambda: now[0])
    campaign_cached(campaign_id=campaign.pk)
    Campaign.objects.filter(pk=campaign.pk).update(name="After")
    now[0] += campaigns.CACHE_SECONDS - 0.5
    assert campaign_cached(campaign_id=campaign.pk).name == "Before"
    now[0] += 1
    assert campaign_cached(campaign_id=campaign.pk).name == "After"
