"""What a rater holds: their lease on a named comparison, an assignment with its texts."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_app.models import Assignment
from feedback_app.selectors.labeling import assignment_held_by_rater, assignment_with_comparison
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
