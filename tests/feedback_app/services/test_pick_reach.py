"""What the lease's pick reads of a rater's assignments, and how far it walks (``selectors.labeling.PICK_REACH``): from the
queue's head, and from a little behind the last comparison the rater ever held."""

import pytest
from django.db import connection
from django.utils import timezone

from feedback_app.models import Assignment, Comparison, Prompt
from feedback_app.selectors import labeling
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.selectors.labeling import comparison_leasable_id, comparison_leasable_picks, comparison_leasable_sql
from feedback_app.selectors.rows import scalar
from feedback_app.services.campaigns import campaign_create
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from tests.plans import studio_plan

pytestmark = pytest.mark.django_db

REACH = 4  # PICK_REACH in these tests, so that a rater's lead past it is a few comparisons


@pytest.fixture
def reach(monkeypatch):
    monkeypatch.setattr(labeling, "PICK_REACH", REACH)
    return REACH


def _assignment_rows_read(sql: str, params: list) -> int:
    """Rows of the assignment table that the statement's plan nodes gave up, or the runs of those nodes where that is more
    (a probe of an index that finds nothing still reads it), by PostgreSQL's EXPLAIN ANALYZE, under the plan a studio's
    tables get (``studio_plan``). A node run once per candidate reports its rows per run, rounded: one row found in two
    probes of a unique index shows as none."""

    def walk(node):
        rows, loops = node.get("Actual Rows", 0), node.get("Actual Loops", 1)
        own = max(rows * loops, loops) if node.get("Relation Name") == Assignment._meta.db_table else 0
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(studio_plan(sql, params))


def _pick_rows_read(*, rater, campaign, now) -> int:
    """The assignment rows the pick's statement reads: its first stretch's, and its second's where the first finds none."""
    return _assignment_rows_read(*comparison_leasable_sql(rater=rater, campaign_id=campaign.pk, now=now))


def _held(rater, comparisons, now) -> None:
    """Give ``rater`` a labelled assignment on each of ``comparisons``, which stay open (each waits for others' labels)."""
    Assignment.objects.bulk_create([Assignment(comparison=c, rater=rater, a_on_left=True, status=Assignment.Status.SUBMITTED, leased_at=now,
                                               lease_expires_at=now, finished_at=now) for c in comparisons])


def _pick(rater, now) -> int | None:
    return comparison_leasable_id(rater=rater, campaign_id=campaign_default().pk, now=now)


def _ids_in_a_row(comparisons) -> list[int]:
    ids = [c.pk for c in comparisons]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # the reach is counted in ids
    return ids


@pytest.mark.skipif(connection.vendor != "postgresql", reason="rows read come from PostgreSQL's EXPLAIN ANALYZE")
def test_the_pick_reads_the_raters_assignments_of_the_comparisons_it_walks_not_their_whole_history(make_user, make_comparisons):
    campaign, rater, now = campaign_default(), make_user(), timezone.now()
    for _ in make_comparisons(30):  # the rater's history: 30 labelled comparisons, complete, before the queue's head
        lease = assignment_lease_next(campaign=campaign, rater=rater, now=now)
        label_record(campaign=campaign, rater=rater, comparison_id=lease.comparison_id, submission=LabelSubmission(choice="left"), now=now)
    make_comparisons(3, required_labels=2)
    assert _pick_rows_read(rater=rater, campaign=campaign, now=now) == 1  # the head, probed
    assignment_lease_next(campaign=campaign, rater=rater, now=now)  # one held at the head: the head and the next are probed
    assert _pick_rows_read(rater=rater, campaign=campaign, now=now) == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="rows read come from PostgreSQL's EXPLAIN ANALYZE")
def test_a_head_held_by_another_rater_does_not_make_the_pick_read_what_the_rater_labelled_since(make_user, make_comparisons):
    """The queue's head stays where it is while its comparison is open: a lease held there (a rater who walked away), or a
    comparison that waits for more labels than its raters can give. What a rater labels after it must not be read again at
    each pick: with 40 labels since, as with 5, the pick reads at most the assignments of the comparisons it walks."""
    campaign, now = campaign_default(), timezone.now()
    away, rater = make_user(), make_user()
    make_comparisons(50)
    assignment_lease_next(campaign=campaign, rater=away, now=now)  # the head, held and never labelled
    read = {}
    for labelled in range(1, 41):
        lease = assignment_lease_next(campaign=campaign, rater=rater, now=now)
        label_record(campaign=campaign, rater=rater, comparison_id=lease.comparison_id, submission=LabelSubmission(choice="left"), now=now)
        if labelled in (5, 40):
            read[labelled] = _pick_rows_read(rater=rater, campaign=campaign, now=now)
    assert read[40] == read[5] <= 1, read


@pytest.mark.skipif(connection.vendor != "postgresql", reason="rows read come from PostgreSQL's EXPLAIN ANALYZE")
def test_a_rater_far_ahead_of_the_head_has_picks_that_read_no_more_the_further_ahead_they_are(reach, make_user, make_comparisons):
    """Each comparison waits for three labels and only one rater labels: everything they labelled stays open ahead of them.
    The pick probes the head's stretch and the stretch behind their last, the same at 3 and at 6 reaches ahead."""
    campaign, rater, now = campaign_default(), make_user(), timezone.now()
    ids = _ids_in_a_row(make_comparisons(8 * reach, required_labels=3))
    read = {}
    for labelled in range(6 * reach):
        lease = assignment_lease_next(campaign=campaign, rater=rater, now=now)
        assert lease.comparison_id == ids[labelled]  # always the one after the last they hold
        label_record(campaign=campaign, rater=rater, comparison_id=lease.comparison_id, submission=LabelSubmission(choice="left"), now=now)
        if labelled + 1 in (3 * reach, 6 * reach):
            read[labelled + 1] = _pick_rows_read(rater=rater, campaign=campaign, now=now)
    # the head's stretch (reach), the rater's last assignment (1), the stretch behind it and the one after (reach + 1)
    assert read[3 * reach] == read[6 * reach] <= 2 * reach + 2, read


def test_within_reach_the_pick_is_the_oldest_comparison_the_rater_never_held(reach, make_user, make_comparisons):
    rater, now = make_user(), timezone.now()
    comparisons = make_comparisons(10, required_labels=3)
    ids = _ids_in_a_row(comparisons)
    _held(rater, [comparisons[i] for i in (0, 2, 3, 4, 6, 7, 8)], now)
    assert _pick(rater, now) == ids[1]  # within reach of the head
    _held(rater, [comparisons[1]], now)
    assert _pick(rater, now) == ids[5]  # within reach behind the last held (8)
    _held(rater, [comparisons[5]], now)
    assert _pick(rater, now) == ids[9]


def test_a_comparison_out_of_reach_comes_back_to_the_rater_once_the_head_comes_within_reach(reach, make_user, make_comparisons):
    """A comparison the rater passed (it was full then) further than the reach from both the head and their last: they are
    offered the one after their last, and it once the comparisons before it are complete. A rater who never came to it
    is offered the queue's head, as always."""
    rater, now = make_user(), timezone.now()
    comparisons = make_comparisons(4 * reach, required_labels=3)
    ids = _ids_in_a_row(comparisons)
    passed = reach + 1
    _held(rater, [c for i, c in enumerate(comparisons[:3 * reach]) if i != passed], now)
    assert _pick(rater, now) == ids[3 * reach]
    assert _pick(make_user(), now) == ids[0]
    Comparison.objects.filter(pk__in=ids[:passed - 1]).update(status=Comparison.Status.COMPLETE, completed_at=now)
    assert _pick(rater, now) == ids[passed]


def test_a_gold_pair_the_rater_held_does_not_move_the_stretch_behind_their_last(reach, make_user, make_comparisons):
    rater, now = make_user(), timezone.now()
    comparisons = make_comparisons(6 * reach, required_labels=3)
    ids = _ids_in_a_row(comparisons)
    Comparison.objects.filter(pk=ids[-1]).update(is_gold=True)
    _held(rater, [*comparisons[:2 * reach], comparisons[-1]], now)
    assert _pick(rater, now) == ids[2 * reach]


def test_the_last_comparison_the_rater_held_is_the_campaigns(reach, make_user, make_comparisons):
    """Their last comparison in another campaign, later in the queue, says nothing of this one's."""
    rater, now = make_user(), timezone.now()
    comparisons = make_comparisons(6 * reach, required_labels=3)
    ids = _ids_in_a_row(comparisons)
    other = campaign_create(slug="other", name="Other")
    Prompt.objects.filter(comparisons__in=ids[3 * reach:]).update(campaign=other)
    _held(rater, [*comparisons[:2 * reach], comparisons[4 * reach]], now)
    assert _pick(rater, now) == ids[2 * reach]


def test_past_comparisons_full_at_the_head_the_second_stretch_walks_on_to_the_oldest_with_a_free_slot(reach, make_user, make_comparisons):
    """Leases held on the queue's first comparisons, further than the reach (raters who walked away): the first stretch
    has none, and the second, for a rater who never held any, walks on from the end of the first's."""
    rater, now, campaign = make_user(), timezone.now(), campaign_default()
    ids = _ids_in_a_row(make_comparisons(4 * reach))
    for _ in range(2 * reach):
        assignment_lease_next(campaign=campaign, rater=make_user(), now=now)
    first, _ = comparison_leasable_picks(rater=rater, campaign_id=campaign.pk, now=now)
    assert scalar(*first) is None
    assert _pick(rater, now) == ids[2 * reach]


def _comparison_rows_read(sql: str, params: list) -> int:
    """Rows of the comparison table that the statement's plan nodes read, found or filtered out, by PostgreSQL's EXPLAIN
    ANALYZE under the plan a studio's tables get (``studio_plan``)."""

    def walk(node):
        own = 0
        if node.get("Relation Name") == Comparison._meta.db_table:
            own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1)
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(studio_plan(sql, params))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="rows read come from PostgreSQL's EXPLAIN ANALYZE")
def test_the_pick_walks_none_of_the_comparisons_other_raters_hold(reach, make_user, make_comparisons):
    """Many raters at once each hold a lease at the queue's head: the pick of one more reads no more of the comparisons'
    rows behind 40 held leases than behind 2 (it walks the index of those with a slot free; it walked every held one)."""
    campaign, now = campaign_default(), timezone.now()
    ids = _ids_in_a_row(make_comparisons(60))
    rater, read = make_user(), {}
    for held in range(1, 41):
        assert assignment_lease_next(campaign=campaign, rater=make_user(), now=now).comparison_id == ids[held - 1]
        if held in (2, 40):
            read[held] = _comparison_rows_read(*comparison_leasable_sql(rater=rater, campaign_id=campaign.pk, now=now))
    assert read[40] == read[2], read
    assert _pick(rater, now) == ids[40]
