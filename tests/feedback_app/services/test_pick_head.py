"""The queue's head a process remembers (``selectors.queue_head``): the pick walks from it, a comparison that
reopens behind it is still offered, and on PostgreSQL a snapshot held open does not make the pick walk the comparisons
completed since."""

import pytest
from django.db import connection, connections
from django.utils import timezone

from feedback_app.models import Comparison, Prompt
from feedback_app.selectors import queue_head
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.selectors.labeling import comparison_leasable_sql
from feedback_app.selectors.queue_head import queue_head_hint
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.services.quality import comparison_mark_gold, comparison_unmark_gold
from tests.plans import studio_plan

pytestmark = pytest.mark.django_db


def _label_next(campaign, rater, now) -> int:
    """Lease the rater their next comparison and label it; return its id."""
    lease = assignment_lease_next(campaign=campaign, rater=rater, now=now)
    label_record(campaign=campaign, rater=rater, comparison_id=lease.comparison_id, submission=LabelSubmission(choice="left"), now=now)
    return lease.comparison_id


def _hint_expired(monkeypatch) -> None:
    """Every remembered head counts as read from the queue's start longer than ``HEAD_HINT_SECONDS`` ago."""
    monkeypatch.setattr(queue_head, "HEAD_HINT_SECONDS", -1.0)


def test_a_pick_remembers_the_head_it_read_and_the_next_walks_from_there(make_user, make_comparisons):
    campaign, rater, now = campaign_default(), make_user(), timezone.now()
    ids = [c.pk for c in make_comparisons(5)]
    assert queue_head_hint(campaign.pk) == 0  # nothing read yet: the queue's start
    _label_next(campaign, rater, now)
    assert queue_head_hint(campaign.pk) == ids[0]  # the head that lease's pick read
    _label_next(campaign, rater, now)
    assert queue_head_hint(campaign.pk) == ids[1]  # read from the one before, the first now complete
    assert queue_head_hint(campaign.pk, exact=True) == 0


def test_the_remembered_head_is_read_from_the_start_again_after_a_while(monkeypatch, make_user, make_comparisons):
    campaign, rater, now = campaign_default(), make_user(), timezone.now()
    make_comparisons(3)
    _label_next(campaign, rater, now)
    assert queue_head_hint(campaign.pk) != 0
    _hint_expired(monkeypatch)
    assert queue_head_hint(campaign.pk) == 0


def test_a_comparison_reopened_behind_the_head_elsewhere_is_offered_first_once_the_head_is_read_again(monkeypatch, make_user, make_comparisons):
    """Another process reopens a completed comparison (this one never hears of it): it comes first once this process reads
    the head from the queue's start again, and at once where nothing else is free (the pick that finds nothing from the
    head is followed by one from the start)."""
    campaign, now = campaign_default(), timezone.now()
    first, second, third = make_user(), make_user(), make_user()
    ids = [c.pk for c in make_comparisons(3)]
    assert [_label_next(campaign, first, now), _label_next(campaign, first, now)] == ids[:2]
    Comparison.objects.filter(pk=ids[0]).update(status=Comparison.Status.OPEN, label_count=0, completed_at=None)  # as another process
    assert _label_next(campaign, second, now) == ids[2]  # from the head remembered: the reopened one is behind it
    assert _label_next(campaign, second, now) == ids[0]  # nothing else free: found from the queue's start
    Comparison.objects.filter(pk=ids[0]).update(status=Comparison.Status.OPEN, label_count=0, completed_at=None)
    Comparison.objects.filter(pk=ids[2]).update(status=Comparison.Status.OPEN, label_count=0, completed_at=None)
    _hint_expired(monkeypatch)
    assert _label_next(campaign, third, now) == ids[0]  # the head read from the start again: the oldest first


def test_a_gold_pair_returned_to_the_pool_behind_the_head_is_offered_first_at_once(make_user, make_comparisons):
    campaign, now = campaign_default(), timezone.now()
    campaign.gold_rate = 0  # no gold pair is leased here: the first stays unlabelled while the head moves past it
    admin, rater = make_user(), make_user()
    ids = [c.pk for c in make_comparisons(4)]
    comparison_mark_gold(comparison=Comparison.objects.get(pk=ids[0]), winner="a", user=admin)
    assert [_label_next(campaign, rater, now), _label_next(campaign, rater, now)] == ids[1:3]
    assert queue_head_hint(campaign.pk) == ids[2]  # read at the second lease: the gold pair is not in the queue, the next complete
    comparison_unmark_gold(comparison=Comparison.objects.get(pk=ids[0]), user=admin)
    assert queue_head_hint(campaign.pk) == 0
    assert _label_next(campaign, make_user(), now) == ids[0]


def _buffers_read(sql: str, params: list) -> int:
    """The shared buffers the statement's plan read, by PostgreSQL's EXPLAIN (ANALYZE, BUFFERS), under a studio's plan."""
    plan = studio_plan(sql, params, buffers=True)
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL keeps a completed comparison's index entry for an old snapshot")
@pytest.mark.django_db(transaction=True)
def test_a_snapshot_held_open_does_not_make_the_pick_walk_the_comparisons_completed_since(make_user, make_comparisons):
    """A backup's pg_dump holds a snapshot while the raters complete the queue's first comparisons: from the head it
    remembers, the pick reads as much after 600 completed as after 100; from the queue's start, it reads more each time."""
    campaign, rater, now = campaign_default(), make_user(), timezone.now()
    ids = [c.pk for c in make_comparisons(700)]
    with connection.cursor() as cursor:  # statistics as a studio's: the pick joins each candidate's prompt by its key
        cursor.execute(f"ANALYZE {Comparison._meta.db_table}, {Prompt._meta.db_table}")
    _buffers_read(*comparison_leasable_sql(rater=rater, campaign_id=campaign.pk, now=now))  # marks dead what earlier tests left behind
    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    read = {}
    try:
        with holder.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute(f"SELECT COUNT(*) FROM {Comparison._meta.db_table}")  # the snapshot is taken here, and held
        for completed in (100, 600):
            Comparison.objects.filter(pk__in=ids[:completed]).update(status=Comparison.Status.COMPLETE, label_count=1, completed_at=now)
            head = ids[completed]
            read[completed] = {hint: _buffers_read(*comparison_leasable_sql(rater=rater, campaign_id=campaign.pk, now=now, hint=hint))
                               for hint in (0, head)}
    finally:
        holder.rollback()
        holder.close()
    assert read[600][head] <= read[100][ids[100]] + 1, read  # from the head: level
    assert read[600][0] >= read[100][0] + 5, read  # from the start: the entries of every comparison completed since, and their rows
