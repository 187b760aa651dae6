"""Closed days' label counts: a campaign's total always equals its rows, whatever was closed, labelled late or deleted."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from feedback_app.models import Campaign, Comparison, LabelDayCount, PreferenceLabel, Prompt, Response
from feedback_app.selectors.label_tally import label_days_closed_through, labels_total_count
from feedback_app.services.label_tally import label_days_close

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def label_at(db):
    """Make a label of a new comparison in ``campaign`` stamped ``when``."""
    counter = iter(range(10_000))

    def make(when: datetime, campaign_id: int = 1) -> PreferenceLabel:
        i = next(counter)
        prompt = Prompt.objects.create(text=f"Request {i}", campaign_id=campaign_id)
        a, b = Response.objects.create(prompt=prompt, text="yes"), Response.objects.create(prompt=prompt, text="no")
        comparison = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b)
        label = PreferenceLabel.objects.create(comparison=comparison, winner="a")
        PreferenceLabel.objects.filter(pk=label.pk).update(created_at=when)
        label.refresh_from_db()
        return label

    return make


def truth(campaign_id: int = 1) -> int:
    return PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id).count()


def test_before_any_day_closes_the_total_is_a_plain_count(label_at):
    label_at(NOW - timedelta(days=3))
    assert label_days_closed_through() is None and labels_total_count() == 1 == truth()


def test_closing_counts_each_ended_day_per_campaign_and_the_total_adds_the_labels_since(label_at):
    other = Campaign.objects.create(slug="other", name="Other")
    for days_ago in (5, 5, 3, 1):
        label_at(NOW - timedelta(days=days_ago))
    label_at(NOW - timedelta(days=3), campaign_id=other.pk)
    label_at(NOW - timedelta(minutes=5))
    assert label_days_close(now=NOW) == 5  # from the first label's day (Nov 28) to yesterday
    assert label_days_closed_through() == (NOW - timedelta(days=1)).date()
    assert dict(LabelDayCount.objects.filter(campaign_id=1).values_list("day", "labels")) == {
        (NOW - timedelta(days=5)).date(): 2, (NOW - timedelta(days=3)).date(): 1, (NOW - timedelta(days=1)).date(): 1}
    assert labels_total_count() == 5 == truth() and labels_total_count(campaign_id=other.pk) == 1 == truth(other.pk)
    label_at(NOW)  # a new label is counted live
    assert labels_total_count() == 6 == truth()
    assert label_days_close(now=NOW) == 0  # nothing more has ended


def test_a_day_closes_only_once_it_ended_an_hour_ago(label_at):
    """A write that began before midnight may commit after it: yesterday stays open until 01:00."""
    label_at(NOW - timedelta(days=2))
    just_after_midnight = datetime(2026, 12, 3, 0, 30, tzinfo=dt_timezone.utc)
    label_days_close(now=just_after_midnight)
    assert label_days_closed_through() == datetime(2026, 12, 1).date()
    late = label_at(datetime(2026, 12, 2, 23, 59, 59, tzinfo=dt_timezone.utc))  # committed after the close above
    assert labels_total_count() == 2 == truth()
    label_days_close(now=datetime(2026, 12, 3, 1, 30, tzinfo=dt_timezone.utc))
    assert label_days_closed_through() == late.created_at.date() and labels_total_count() == 2 == truth()


def test_deleting_a_label_of_a_closed_day_reopens_it_and_the_total_follows(label_at):
    old = label_at(NOW - timedelta(days=4))
    label_at(NOW - timedelta(days=2))
    label_at(NOW - timedelta(days=1))
    label_days_close(now=NOW)
    old.delete()
    assert label_days_closed_through() == (NOW - timedelta(days=5)).date()
    assert not LabelDayCount.objects.filter(day__gte=(NOW - timedelta(days=4)).date()).exists()
    assert labels_total_count() == 2 == truth()
    label_days_close(now=NOW)
    assert labels_total_count() == 2 == truth()


def test_a_cascade_from_a_deleted_comparison_reopens_its_day(label_at):
    label = label_at(NOW - timedelta(days=2))
    label_at(NOW - timedelta(days=2))
    label_days_close(now=NOW)
    Comparison.objects.filter(pk=label.comparison_id).delete()
    assert labels_total_count() == 1 == truth()


def test_closing_is_bounded_per_call_and_resumes(label_at):
    label_at(NOW - timedelta(days=10))
    assert label_days_close(now=NOW, max_days=4) == 4
    assert labels_total_count() == 1 == truth()
    assert label_days_close(now=NOW) == 6 and labels_total_count() == 1
