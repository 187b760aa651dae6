"""The next comparison picked in the statement that records a rater's label (``leasing.lease_pick_beside``, PostgreSQL), and
the same answers where the label and the pick are statements of their own (SQLite, a gold draw, a qualification)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_app.models import Assignment, Comparison, PreferenceLabel
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services import leasing
from feedback_app.services.labeling import LabelSubmission, label_record_and_lease_next
from feedback_app.services.leasing import assignment_lease_next

pytestmark = pytest.mark.django_db


# The sides' draws for a new lease: one, for the row made with the count under the lock (SQLite inserts that row after it).
SIDES_DRAWN = 1


class Draws:
    """``leasing.random`` counting its draws; ``random()`` gives ``value`` (above any gold rate: no gold pair drawn)."""

    def __init__(self, value: float = 0.99) -> None:
        self.value, self.draws = value, 0

    def random(self) -> float:
        self.draws += 1
        return self.value


def _label_and_next(rater, campaign, comparison: Comparison, submission: LabelSubmission | None = None) -> tuple:
    return label_record_and_lease_next(rater=rater, campaign=campaign, comparison_id=comparison.pk,
                                       submission=submission or LabelSubmission(choice="left"))


def _held(*comparisons: Comparison) -> list[int]:
    return list(Comparison.objects.filter(pk__in=[c.pk for c in comparisons]).order_by("pk").values_list("leases_held", flat=True))


def test_label_and_next_leases_the_next_comparison_with_one_statement_fewer_on_postgresql(rater, make_comparisons, monkeypatch):
    """The label's statement takes the next comparison's slot: the lock (with the rater's lease), the label with the pick, and
    the lease with its texts (PostgreSQL); the same lease elsewhere. One gold draw, as for any lease."""
    first, second, third = make_comparisons(3)
    campaign = campaign_default()
    assert assignment_lease_next(campaign=campaign, rater=rater).comparison_id == first.pk
    draws, submission = Draws(), LabelSubmission(choice="left")
    monkeypatch.setattr(leasing, "random", draws)
    with CaptureQueriesContext(connection) as queries:
        label, created, following = _label_and_next(rater, campaign, first, submission)
    assert created and label.comparison_id == first.pk and following.comparison_id == second.pk
    assert following.comparison.prompt.text and following.comparison.response_a.text  # its texts, loaded with it
    assert _held(first, second, third) == [0, 1, 0]
    assert Assignment.objects.get(pk=following.pk).status == Assignment.Status.LEASED
    assert draws.draws == 1 + SIDES_DRAWN  # the gold draw and the sides' draw of the new lease
    if connection.vendor == "postgresql":
        statements = [q["sql"] for q in queries if q["sql"].startswith(("SELECT", "WITH", "UPDATE", "INSERT"))]
        assert len(statements) == 3, statements
        assert "picked AS (UPDATE" in statements[1]


def test_a_rater_holding_another_lease_gets_it_and_takes_no_new_slot(rater, make_comparisons, leased_with_one_ahead):
    """With a lease held ahead (the page's prefetch), the label's statement takes no slot: the held lease comes next, and the
    queue's other comparisons count no lease."""
    first, second, third = make_comparisons(3)
    campaign = campaign_default()
    shown, ahead = leased_with_one_ahead(rater, campaign)
    assert (shown.comparison_id, ahead.comparison_id) == (first.pk, second.pk)
    _, created, following = _label_and_next(rater, campaign, first)
    assert created and following.pk == ahead.pk
    assert _held(first, second, third) == [0, 1, 0]
    assert Assignment.objects.filter(rater=rater).count() == 2


def test_a_comparison_the_pick_finds_full_once_locked_is_counted_again_and_the_next_one_leased(make_user, make_comparisons,
                                                                                               monkeypatch):
    """A row whose count drifted low is picked beside the label, found full by the count under its lock, counted right, and
    the rater leased the next comparison (after the label commits), as a pick of its own does."""
    labelled, drifted, fresh = make_comparisons(3)
    campaign = campaign_default()
    monkeypatch.setattr(leasing, "random", Draws())
    rater, other = make_user(), make_user()
    assert assignment_lease_next(campaign=campaign, rater=rater).comparison_id == labelled.pk
    assert assignment_lease_next(campaign=campaign, rater=other).comparison_id == drifted.pk
    Comparison.objects.filter(pk=drifted.pk).update(leases_held=0, leases_recount_at=None)
    _, created, following = _label_and_next(rater, campaign, labelled)
    assert created and following.comparison_id == fresh.pk
    assert _held(labelled, drifted, fresh) == [0, 1, 1]
    assert list(Assignment.objects.filter(rater=rater).order_by("pk").values_list("comparison_id", flat=True)) == [labelled.pk, fresh.pk]


@pytest.mark.parametrize("why", ["gold drawn", "qualification", "empty queue", "retry"])
def test_where_the_label_s_statement_picks_nothing_the_lease_is_as_before(rater, make_comparisons, monkeypatch, why):
    """A gold draw (one draw, kept for the lease), a campaign that asks a qualification, an empty queue and a retried label
    (whose statement never runs) lease as a pick of its own would."""
    first, second = make_comparisons(2)
    campaign = campaign_default()
    assert assignment_lease_next(campaign=campaign, rater=rater).comparison_id == first.pk
    if why == "qualification":
        campaign.qualification_pairs = 1  # the rater, who labels here, is exempt from it
        assert leasing.lease_pick_beside(rater=rater, campaign=campaign, now=timezone.now()) is None
    if why == "empty queue":
        Comparison.objects.filter(pk=second.pk).update(status=Comparison.Status.RETIRED)
    if why == "retry":
        _label_and_next(rater, campaign, first)
    draws = Draws(0.0 if why == "gold drawn" else 0.99)
    monkeypatch.setattr(leasing, "random", draws)
    label, created, following = _label_and_next(rater, campaign, first)
    assert created == (why != "retry") and label.comparison_id == first.pk
    if why == "empty queue":
        assert following is None and _held(second) == [0]
    else:
        assert following.comparison_id == second.pk and _held(first, second) == [0, 1]
    # the gold draw, and the sides' draw of a new lease; the retry's lease was made by the first call, and only a pick beside
    # the label (PostgreSQL) draws before it knows that
    gold_draw_of_a_retry = int(connection.vendor == "postgresql")
    assert draws.draws == {"gold drawn": 1 + SIDES_DRAWN, "qualification": 1 + SIDES_DRAWN, "empty queue": 1, "retry": gold_draw_of_a_retry}[why]
    assert PreferenceLabel.objects.filter(rater=rater).count() == 1
