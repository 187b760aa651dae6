"""What a rater holds: their lease on a named comparison, an assignment with its texts."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_app.models import Assignment
from feedback_app.models import Role
from feedback_app.selectors.comparison_lock import assignment_of_rater, comparison_locked_with_assignment, comparison_of_campaign
from feedback_app.selectors.labeling import assignment_held_by_rater, assignment_with_comparison
from feedback_app.services.campaigns import campaign_create, member_set
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


def test_assignment_held_by_rater_returns_the_raters_unexpired_lease(rater, make_comparisons):
    """The rater's lease on that comparison is returned, texts joined in (no further queries)."""
    make_comparisons(1)
    lease = assignment_lease_next(campaign=campaign_default(), rater=rater)
    held = assignment_held_by_rater(rater=rater, comparison_id=lease.comparison_id, now=timezone.now())
    assert held.pk == lease.pk
    with CaptureQueriesContext(connection) as queries:
        assert held.comparison.prompt.text and held.comparison.response_a.text and held.comparison.response_b.text
    assert len(queries) == 0


def test_assignment_held_by_rater_is_none_for_another_rater_an_expired_lease_or_a_label(rater, make_user, make_comparisons):
    """Another rater's lease, an expired one, or one that ended does not count as held."""
    make_comparisons(1)
    lease = assignment_lease_next(campaign=campaign_default(), rater=rater)
    now = timezone.now()
    assert assignment_held_by_rater(rater=make_user(), comparison_id=lease.comparison_id, now=now) is None
    assert assignment_held_by_rater(rater=rater, comparison_id=lease.comparison_id + 1, now=now) is None
    assert assignment_held_by_rater(rater=rater, comparison_id=lease.comparison_id, now=lease.lease_expires_at + timedelta(seconds=1)) is None
    Assignment.objects.filter(pk=lease.pk).update(status=Assignment.Status.SKIPPED)
    assert assignment_held_by_rater(rater=rater, comparison_id=lease.comparison_id, now=now) is None


def test_assignment_with_comparison_joins_the_texts(rater, make_comparisons):
    """The assignment comes back with its prompt and both responses loaded in one query."""
    make_comparisons(1)
    lease = assignment_lease_next(campaign=campaign_default(), rater=rater)
    with CaptureQueriesContext(connection) as queries:
        assignment = assignment_with_comparison(assignment_id=lease.pk)
        assert assignment.comparison.prompt.text == "Where is my order #1000?"
        assert {assignment.comparison.response_a.text, assignment.comparison.response_b.text} == {"It ships tomorrow (order 0).", "Please wait (order 0)."}
    assert len(queries) == 1


def test_assignment_with_comparison_raises_for_a_missing_id():
    """An id that names no assignment raises DoesNotExist."""
    with pytest.raises(Assignment.DoesNotExist):
        assignment_with_comparison(assignment_id=987654)


def _read_apart(*, rater, comparison_id: int, campaign_id: int):
    """What the label read before ``comparison_locked_with_assignment``: the locking statement, then the assignment's."""
    comparison = comparison_of_campaign(comparison_id=comparison_id, campaign_id=campaign_id, lock="wait")
    return None if comparison is None else (comparison, assignment_of_rater(rater=rater, comparison_id=comparison_id, campaign_id=campaign_id))


def _as_compared(read):
    if read is None:
        return None
    comparison, found = read
    held = None if found is None else (found[0].pk, found[0].status, found[0].a_on_left, found[0].leased_at, found[1], found[2])
    return comparison.pk, comparison.label_count, comparison.leases_held, comparison.status, held


def test_comparison_locked_with_assignment_reads_what_the_two_statements_read(rater, make_user, make_comparisons):
    """The comparison and the rater's assignment, its label's id and the rater's role, read in one statement, are what the
    locking statement and the assignment's statement read one after the other: for a rater who never held it, one who holds
    it, one who labelled it, a member of another campaign only, and a comparison of another campaign (None)."""
    labelled, held, other = make_comparisons(3)
    default = campaign_default()
    assert assignment_lease_next(campaign=default, rater=rater).comparison_id == labelled.pk
    label_record(campaign=default, rater=rater, comparison_id=labelled.pk, submission=LabelSubmission(choice="right"))
    assert assignment_lease_next(campaign=default, rater=rater).comparison_id == held.pk
    outsider, elsewhere = make_user(), make_user()
    member_set(campaign=campaign_create(slug="elsewhere", name="Elsewhere"), user=elsewhere, role=Role.RATER)
    cases = [(user, comparison.pk, default.pk) for user in (rater, outsider, elsewhere) for comparison in (held, labelled, other)]
    cases.append((rater, held.pk, default.pk + 1000))
    reads = []
    for user, comparison_id, campaign_id in cases:
        with transaction.atomic():
            together = comparison_locked_with_assignment(rater=user, comparison_id=comparison_id, campaign_id=campaign_id)
            reads.append(_as_compared(together))
            assert reads[-1] == _as_compared(_read_apart(rater=user, comparison_id=comparison_id, campaign_id=campaign_id))
    assert reads[0][4][4] is None and reads[0][4][5] == Role.RATER  # held, no label yet
    assert reads[1][4][4] is not None and reads[1][4][1] == Assignment.Status.SUBMITTED  # labelled
    assert reads[2][4] is None and reads[3][4] is None  # never held
    assert reads[-1] is None  # another campaign's


def test_comparison_locked_with_assignment_is_one_statement(rater, make_comparisons):
    """A label's first read is one statement where no other transaction wrote the comparison since it began."""
    (comparison,) = make_comparisons(1)
    campaign = campaign_default()
    assignment_lease_next(campaign=campaign, rater=rater)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        _, (assignment, label_id, role) = comparison_locked_with_assignment(rater=rater, comparison_id=comparison.pk, campaign_id=campaign.pk)
    assert [assignment.status, label_id, role] == [Assignment.Status.LEASED, None, Role.RATER]
    assert len(queries) == 1, [q["sql"][:60] for q in queries]
