"""Qualification: a new rater labels K gold pairs first and is admitted only at the set accuracy; the result is recorded."""

import pytest

from feedback_app.models import DEFAULT_CAMPAIGN_ID, AuditEntry, CampaignMember, Role
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.services.campaigns import campaign_settings_update
from feedback_app.services.quality import comparison_mark_gold
from feedback_app.selectors.campaigns import campaign_default
from tests.caches import caches_clear

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(admin_user, make_comparisons):
    """Three gold pairs (expected answer A) and three ordinary ones; qualification on 2 pairs at 0.5, no gold draws after it."""
    comparisons = make_comparisons(6)
    gold, plain = comparisons[3:], comparisons[:3]
    for comparison in gold:
        comparison_mark_gold(comparison=comparison, winner="a", user=admin_user)
    campaign_settings_update(campaign=campaign_default(), user=admin_user, qualification_pairs=2, qualification_accuracy=0.5, gold_rate=0.0)
    caches_clear()  # the on-commit invalidation does not run inside the test's transaction
    return {"gold": {c.pk for c in gold}, "plain": {c.pk for c in plain}}


def answer(rater, *, right: bool) -> int:
    """Lease the rater's next comparison and answer it: the expected answer (A) or not; return its id."""
    assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
    side = "left" if assignment.a_on_left == right else "right"
    label_record(campaign=campaign_default(), rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice=side))
    return assignment.comparison_id


def status(rater) -> CampaignMember:
    """The rater's membership of the default campaign, where the qualification is recorded (a blank one if they have none)."""
    return CampaignMember.objects.filter(user=rater, campaign_id=DEFAULT_CAMPAIGN_ID).first() or CampaignMember()


def test_a_new_rater_labels_only_gold_pairs_until_graded_then_is_admitted(campaign, make_user):
    rater = make_user()
    first = answer(rater, right=True)
    assert first in campaign["gold"] and status(rater).qualification == "pending"
    second = answer(rater, right=False)
    assert second in campaign["gold"]
    graded = status(rater)
    assert (graded.qualification, graded.qualification_correct, graded.qualification_n) == ("passed", 1, 2)
    assert AuditEntry.objects.get(action="rater.qualification").details == {"campaign": "default", "result": "passed", "correct": 1, "of": 2,
                                                                                 "required": 0.5}
    assert assignment_lease_next(campaign=campaign_default(), rater=rater).comparison_id in campaign["plain"]  # admitted: the ordinary queue


def test_a_rater_below_the_accuracy_is_not_admitted_and_leased_nothing_more(campaign, make_user):
    from feedback_app.models import Assignment
    from feedback_app.services.leasing import assignment_lease_ahead

    rater = make_user()
    answer(rater, right=False)
    held_ready = assignment_lease_ahead(campaign=campaign_default(), rater=rater, shown=assignment_lease_next(campaign=campaign_default(), rater=rater))  # the label page's second lease
    answer(rater, right=False)
    assert status(rater).qualification == "failed"
    assert assignment_lease_next(campaign=campaign_default(), rater=rater) is None
    assert Assignment.objects.get(pk=held_ready.pk).status == "skipped"  # back to the pool


def test_raters_who_labelled_before_and_staff_are_not_asked(admin_user, make_user, make_comparisons):
    veteran, researcher = make_user(), make_user(Role.RESEARCHER)
    first, second, third = make_comparisons(3)
    assert assignment_lease_next(campaign=campaign_default(), rater=veteran).comparison_id == first.pk
    label_record(campaign=campaign_default(), rater=veteran, comparison_id=first.pk, submission=LabelSubmission(choice="left"))
    campaign_settings_update(campaign=campaign_default(), user=admin_user, qualification_pairs=2, gold_rate=0.0)
    caches_clear()
    assert assignment_lease_next(campaign=campaign_default(), rater=veteran).comparison_id == second.pk  # no gold pairs exist, yet the veteran labels on
    assert status(veteran).qualification == "exempt"
    assert assignment_lease_next(campaign=campaign_default(), rater=researcher).comparison_id == third.pk and status(researcher).qualification == ""


def test_a_pending_rater_waits_when_no_gold_pair_is_left_for_them(admin_user, make_user, make_comparisons):
    make_comparisons(2)
    campaign_settings_update(campaign=campaign_default(), user=admin_user, qualification_pairs=2)
    caches_clear()
    rater = make_user()
    assert assignment_lease_next(campaign=campaign_default(), rater=rater) is None and status(rater).qualification == "pending"
