"""Label counts per hour up to a closed instant: a campaign's totals always equal its rows, whatever was closed, labelled late, imported or
deleted."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from feedback_app.models import Campaign, Comparison, LabelHourCount, LabelHoursClosed, PreferenceLabel, Prompt, Response
from feedback_app.selectors.label_tally import label_hours_closed_through, labels_total_count, rater_labels_by_hour
from feedback_app.services.imports import preferences_import
from feedback_app.services.label_tally import SETTLE, label_hours_close

NOW = datetime(2026, 12, 3, 12, 20, tzinfo=dt_timezone.utc)


@pytest.fixture
def label_at(db, make_user):
    """Make a label of a new comparison in ``campaign`` stamped ``when`` (a rater's, or an imported one)."""
    counter = iter(range(10_000))
    rater = make_user()

    def make(when: datetime, campaign_id: int = 1, imported: bool = False) -> PreferenceLabel:
        i = next(counter)
        prompt = Prompt.objects.create(text=f"Request {i}", campaign_id=campaign_id)
        a, b = Response.objects.create(prompt=prompt, text="yes"), Response.objects.create(prompt=prompt, text="no")
        comparison = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b)
        label = PreferenceLabel.objects.create(comparison=comparison, winner="a", rater=None if imported else rater)
        PreferenceLabel.objects.filter(pk=label.pk).update(created_at=when)
        label.refresh_from_db()
        return label

    return make


def truth(campaign_id: int = 1) -> int:
    return PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id).count()


def rater_truth(start: datetime, campaign_id: int = 1) -> int:
    return PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id, rater__isnull=False, created_at__gte=start).count()


def test_before_any_hour_closes_the_total_is_a_plain_count(label_at):
    label_at(NOW - timedelta(days=3))
    assert label_hours_closed_through() is None and labels_total_count() == 1 == truth()


def test_closing_counts_each_ended_hour_per_campaign_and_the_totals_add_the_labels_since(label_at):
    other = Campaign.objects.create(slug="other", name="Other")
    for hours_ago in (50, 50, 30, 3):
        label_at(NOW - timedelta(hours=hours_ago))
    label_at(NOW - timedelta(hours=30), imported=True)
    label_at(NOW - timedelta(hours=30), campaign_id=other.pk)
    label_at(NOW - timedelta(seconds=30))  # at 12:19:30: live
    first_hour = (NOW - timedelta(hours=50)).replace(minute=0)
    assert label_hours_close(now=NOW) == 50 * 60 + 19  # from the first label's hour to 12:19, SETTLE (a minute) ago
    assert label_hours_closed_through() == datetime(2026, 12, 3, 12, 19, tzinfo=dt_timezone.utc)
    assert dict(LabelHourCount.objects.filter(campaign_id=1).values_list("hour", "labels")) == {
        first_hour: 2, first_hour + timedelta(hours=20): 2, first_hour + timedelta(hours=47): 1}
    assert LabelHourCount.objects.get(campaign_id=1, hour=first_hour + timedelta(hours=20)).rater_labels == 1
    assert labels_total_count() == 6 == truth() and labels_total_count(campaign_id=other.pk) == 1 == truth(other.pk)
    label_at(NOW)  # a new label is counted live
    assert labels_total_count() == 7 == truth()
    assert label_hours_close(now=NOW) == 0  # nothing more has settled


def test_raters_labels_by_hour_read_the_closed_hours_and_the_rest_live(label_at):
    for minutes_ago in (47 * 60 + 50, 47 * 60 + 10, 20 * 60, 20 * 60 + 5, 90, 30, 0):
        label_at(NOW - timedelta(minutes=minutes_ago))
    label_at(NOW - timedelta(hours=20), imported=True)  # not a rater's
    label_hours_close(now=NOW)
    LabelHourCount.objects.update(labels=0)  # the raters' counts come from their own column
    for start in (NOW - timedelta(hours=47, minutes=30), (NOW - timedelta(hours=48)).replace(minute=0), NOW - timedelta(minutes=45)):
        by_hour = rater_labels_by_hour(start=start)
        assert sum(by_hour.values()) == rater_truth(start)  # a partial first hour counts from the start
        assert all(hour.minute == 0 for hour in by_hour)
    assert rater_labels_by_hour(start=(NOW - timedelta(hours=20)).replace(minute=0))[(NOW - timedelta(hours=21)).replace(minute=0)] == 0


def test_a_close_stops_settle_minutes_ago_and_the_next_adds_to_the_hour_it_stopped_in(label_at):
    """A write that began before a close may commit after it: the last ``SETTLE`` stays live."""
    assert SETTLE == timedelta(minutes=1)
    label_at(datetime(2026, 12, 3, 12, 0, 30, tzinfo=dt_timezone.utc))
    label_at(datetime(2026, 12, 3, 12, 1, tzinfo=dt_timezone.utc), imported=True)
    label_hours_close(now=datetime(2026, 12, 3, 12, 10, 40, tzinfo=dt_timezone.utc))
    assert label_hours_closed_through() == datetime(2026, 12, 3, 12, 9, tzinfo=dt_timezone.utc)
    late = label_at(datetime(2026, 12, 3, 12, 9, 59, tzinfo=dt_timezone.utc))  # committed after the close above
    label_at(datetime(2026, 12, 3, 12, 12, tzinfo=dt_timezone.utc))
    assert labels_total_count() == 4 == truth()
    label_hours_close(now=NOW)
    assert label_hours_closed_through() == datetime(2026, 12, 3, 12, 19, tzinfo=dt_timezone.utc) > late.created_at
    row = LabelHourCount.objects.get(campaign_id=1, hour=datetime(2026, 12, 3, 12, 0, tzinfo=dt_timezone.utc))
    assert (row.labels, row.rater_labels) == (4, 3)  # the two new ones added to the hour's row
    assert labels_total_count() == 4 == truth() and rater_labels_by_hour(start=NOW.replace(minute=0))[row.hour] == 3


def test_every_writer_of_labels_gives_a_label_its_comparisons_campaign(label_at, make_user):
    """The counts read the label's own campaign (its comparison's prompt's, copied when it is made): a label made by a
    save, an import and a rater in another campaign counts there, and only there."""
    from feedback_app.models import CampaignMember, Role
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next

    other = Campaign.objects.create(slug="other", name="Other")
    label_at(NOW, campaign_id=other.pk)
    preferences_import(data=b'{"prompt": "p", "chosen": "good", "rejected": "bad"}\n', filename="other.jsonl", campaign_id=other.pk)
    rater = make_user()
    CampaignMember.objects.create(campaign=other, user=rater, role=Role.RATER)
    label_at(NOW, campaign_id=other.pk)
    lease = assignment_lease_next(campaign=other, rater=rater)
    label_record(campaign=other, rater=rater, comparison_id=lease.comparison_id, submission=LabelSubmission(choice="left"))
    stored = list(PreferenceLabel.objects.values_list("campaign_id", "comparison__prompt__campaign_id"))
    assert len(stored) == 4 and all(own == through_prompt == other.pk for own, through_prompt in stored)
    assert labels_total_count(campaign_id=other.pk) == 4 == truth(other.pk) and labels_total_count() == 0 == truth()


def test_an_import_that_outlasts_the_settling_reopens_what_a_close_passed(label_at, django_capture_on_commit_callbacks):
    label_at(NOW - timedelta(hours=3))
    label_hours_close(now=NOW)
    # closes ran on while the import's transaction was open: the closed instant lies past its labels when it commits
    LabelHoursClosed.objects.filter(pk=1).update(through=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        preferences_import(data=b'{"prompt": "p", "chosen": "good", "rejected": "bad"}\n', filename="late.jsonl")
    assert labels_total_count() == 2 == truth()
    label_hours_close()
    assert labels_total_count() == 2 == truth()


def test_undoing_a_live_label_reopens_nothing(label_at):
    label_at(NOW - timedelta(hours=3))
    label_hours_close(now=NOW)
    live = label_at(NOW - timedelta(seconds=30))
    live.delete()
    assert label_hours_closed_through() == datetime(2026, 12, 3, 12, 19, tzinfo=dt_timezone.utc)
    assert labels_total_count() == 1 == truth()


def test_an_undo_of_a_closed_label_takes_it_out_of_its_hour_and_reopens_nothing(label_at, make_user, undoable_label):
    """Raters undo often, minutes after they labelled: the label leaves its hour's row; the hour is not read again."""
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.labeling import label_undo_last

    label_at(NOW - timedelta(hours=3))
    comparison = label_at(NOW - timedelta(minutes=4)).comparison
    Comparison.objects.filter(pk=comparison.pk).update(required_labels=2, label_count=2, status="complete", completed_at=NOW - timedelta(minutes=3))
    rater = make_user()
    undoable_label(comparison, rater, at=NOW - timedelta(minutes=3))
    label_hours_close(now=NOW)
    closed = label_hours_closed_through()
    assert closed == datetime(2026, 12, 3, 12, 19, tzinfo=dt_timezone.utc)
    assert LabelHourCount.objects.get(campaign_id=1, hour=NOW.replace(minute=0)).rater_labels == 2
    label_undo_last(rater=rater, campaign=campaign_default(), now=NOW)
    assert label_hours_closed_through() == closed  # not reopened
    row = LabelHourCount.objects.get(campaign_id=1, hour=NOW.replace(minute=0))
    assert (row.labels, row.rater_labels) == (1, 1)
    assert labels_total_count() == 2 == truth() and rater_labels_by_hour(start=NOW.replace(minute=0))[row.hour] == 1


def test_deleting_a_label_of_a_closed_hour_reopens_it_and_the_total_follows(label_at):
    old = label_at(NOW - timedelta(hours=40))
    label_at(NOW - timedelta(hours=20))
    label_at(NOW - timedelta(hours=2))
    label_hours_close(now=NOW)
    old.delete()
    assert label_hours_closed_through() == (NOW - timedelta(hours=40)).replace(minute=0)
    assert not LabelHourCount.objects.exists()
    assert labels_total_count() == 2 == truth()
    label_hours_close(now=NOW)
    assert labels_total_count() == 2 == truth() and LabelHourCount.objects.count() == 2


def test_a_cascade_from_a_deleted_comparison_reopens_its_hour(label_at):
    label = label_at(NOW - timedelta(days=2))
    label_at(NOW - timedelta(days=2))
    label_hours_close(now=NOW)
    Comparison.objects.filter(pk=label.comparison_id).delete()
    assert labels_total_count() == 1 == truth()


def test_closing_is_bounded_per_call_and_resumes(label_at):
    label_at(NOW - timedelta(hours=10, minutes=10))
    assert label_hours_close(now=NOW, max_hours=4) == 4 * 60
    assert labels_total_count() == 1 == truth()
    assert label_hours_close(now=NOW) == 6 * 60 + 19 and labels_total_count() == 1


def test_the_labels_since_the_close_read_once_serve_the_total_and_the_hours(label_at):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from feedback_app.selectors.label_tally import label_hours_live

    for minutes_ago in (26 * 60, 3 * 60 + 5, 50, 4, 1):
        label_at(NOW - timedelta(minutes=minutes_ago))
    label_at(NOW - timedelta(minutes=3), imported=True)
    label_hours_close(now=NOW - timedelta(hours=1))
    live = label_hours_live()
    assert live.through == datetime(2026, 12, 3, 11, 19, tzinfo=dt_timezone.utc)
    assert labels_total_count(live=live) == labels_total_count() == 6 == truth()
    # the last: a whole hour after the close (labels today just after midnight, before the close passed it)
    for start in (NOW - timedelta(hours=30), NOW.replace(hour=0, minute=0), NOW - timedelta(minutes=45), NOW.replace(minute=0)):
        with CaptureQueriesContext(connection) as reading:
            assert rater_labels_by_hour(start=start, live=live) == rater_labels_by_hour(start=start)
        with CaptureQueriesContext(connection) as reusing:
            rater_labels_by_hour(start=start, live=live)
        assert len(reusing) < len(reading) / 2  # the window since the close is not read again
    assert rater_labels_by_hour(start=NOW.replace(minute=0), live=live) == {NOW.replace(minute=0): 2}
    assert not reusing.captured_queries
    partial = NOW.replace(minute=10)  # after the close, not a whole hour: read
    assert rater_labels_by_hour(start=partial, live=live) == rater_labels_by_hour(start=partial) == {NOW.replace(minute=0): 2}


def minute_truth(since: datetime, until: datetime, campaign_id: int = 1) -> int:
    return PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id, rater__isnull=False, created_at__gte=since,
                                          created_at__lt=until).count()


def test_a_close_counts_the_raters_labels_of_its_last_hour_per_minute_and_drops_older_minutes(label_at):
    from feedback_app.models import LabelMinuteCount

    for minutes_ago in (90, 50, 50, 4, 4, 2, 0):
        label_at(NOW - timedelta(minutes=minutes_ago))
    label_at(NOW - timedelta(minutes=4), imported=True)  # not a rater's
    label_hours_close(now=NOW)
    rows = dict(LabelMinuteCount.objects.filter(campaign_id=1).values_list("minute", "rater_labels"))
    assert rows == {NOW - timedelta(minutes=50): 2, NOW - timedelta(minutes=4): 2, NOW - timedelta(minutes=2): 1}  # 90 minutes ago: dropped
    label_hours_close(now=NOW + timedelta(minutes=55))
    rows = dict(LabelMinuteCount.objects.filter(campaign_id=1).values_list("minute", "rater_labels"))
    assert rows == {NOW - timedelta(minutes=4): 2, NOW - timedelta(minutes=2): 1, NOW: 1}  # an hour before the new closed instant


def test_labels_per_minute_reads_the_closed_minutes_and_the_live_labels_alike(label_at, monkeypatch):
    from feedback_app.selectors import label_tally
    from feedback_app.selectors.label_tally import label_hours_live, labels_per_minute

    for minutes_ago in (7, 5, 4, 4, 3, 2, 1, 0):
        label_at(NOW - timedelta(minutes=minutes_ago, seconds=-10))
    monkeypatch.setattr(label_tally.timezone, "now", lambda: NOW + timedelta(seconds=30))
    since = NOW - timedelta(minutes=5)  # the start of the minute five minutes ago
    expected = round(minute_truth(since, NOW + timedelta(minutes=1)) / 5.5, 2)
    assert labels_per_minute() == expected  # before any close: the window counted
    label_hours_close(now=NOW)  # closed through 12:19: the minutes before from their rows, the rest live
    reads = []
    counted = label_tally.labels_in_window_by_hour
    monkeypatch.setattr(label_tally, "labels_in_window_by_hour", lambda **kw: reads.append(kw) or counted(**kw))
    live = label_hours_live()
    assert labels_per_minute(live=live) == labels_per_minute() == expected
    assert len(reads) == 2  # the live read and the call without it; with it, no window is read again
    from feedback_app.models import LabelMinuteCount

    assert LabelMinuteCount.objects.filter(minute__gte=since).exists()


def test_an_undo_of_a_closed_label_takes_it_out_of_its_minute_too(label_at, make_user, undoable_label):
    from feedback_app.models import LabelMinuteCount
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.labeling import label_undo_last

    comparison = label_at(NOW - timedelta(minutes=4)).comparison
    Comparison.objects.filter(pk=comparison.pk).update(required_labels=2, label_count=2, status="complete", completed_at=NOW - timedelta(minutes=3))
    rater = make_user()
    undoable_label(comparison, rater, at=NOW - timedelta(minutes=3))
    label_hours_close(now=NOW)
    assert LabelMinuteCount.objects.get(minute=NOW - timedelta(minutes=3)).rater_labels == 1
    label_undo_last(rater=rater, campaign=campaign_default(), now=NOW)
    assert LabelMinuteCount.objects.get(minute=NOW - timedelta(minutes=3)).rater_labels == 0


def test_a_reopened_stretch_takes_its_minutes_down_and_the_next_close_counts_them_again(label_at):
    from feedback_app.models import LabelMinuteCount

    old = label_at(NOW - timedelta(minutes=30))
    label_at(NOW - timedelta(minutes=20))
    label_hours_close(now=NOW)
    old.delete()  # a label of a closed stretch: its hour reopens
    assert not LabelMinuteCount.objects.exists()
    label_hours_close(now=NOW)
    assert dict(LabelMinuteCount.objects.values_list("minute", "rater_labels")) == {NOW - timedelta(minutes=20): 1}
