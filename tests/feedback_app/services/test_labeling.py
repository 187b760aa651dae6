from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.models import Assignment, AuditEntry, Comparison, PreferenceLabel, Role
from feedback_app.services.labeling import (
    InvalidSubmission,
    LabelConflict,
    LabelSubmission,
    NotLeased,
    NothingToUndo,
    assignment_skip,
    label_record,
    label_record_and_lease_next,
    label_undo_last,
)
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


def test_lease_returns_the_same_comparison_until_labelled(rater, make_comparisons):
    """Asking again returns the rater's current lease rather than a new one."""
    make_comparisons(3)
    first = assignment_lease_next(campaign=campaign_default(), rater=rater)
    again = assignment_lease_next(campaign=campaign_default(), rater=rater)
    assert first.pk == again.pk
    assert Assignment.objects.filter(rater=rater).count() == 1


def test_label_and_next_hands_on_the_lease_held_ahead_then_a_new_one_then_none(rater, make_comparisons, leased_with_one_ahead):
    """The next lease is the one the rater's page held ready, if any (read beside the label's writes on PostgreSQL);
    else a new one; None once nothing is left. A retried label finds the lease the first call handed on."""
    first, second, third = make_comparisons(3)
    campaign = campaign_default()
    shown, ahead = leased_with_one_ahead(rater, campaign)
    assert (shown.comparison_id, ahead.comparison_id) == (first.pk, second.pk)
    steps = []
    for comparison in (first, second, second, third):
        label, created, following = label_record_and_lease_next(campaign=campaign, rater=rater, comparison_id=comparison.pk,
                                                                 submission=LabelSubmission(choice="left"))
        steps.append((created, following.pk if following else None))
    third_lease = Assignment.objects.get(rater=rater, comparison=third)
    assert steps == [(True, ahead.pk), (True, third_lease.pk), (False, third_lease.pk), (True, None)]
    assert following is None and following == Assignment.objects.filter(rater=rater, status=Assignment.Status.LEASED).first()


def test_label_is_stored_in_response_terms(rater, make_comparisons):
    """"Left" means response A when A was shown on the left, and B otherwise."""
    make_comparisons(2)
    for a_on_left, expected in ((True, "a"), (False, "b")):
        assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
        Assignment.objects.filter(pk=assignment.pk).update(a_on_left=a_on_left)
        label, created = label_record(campaign=campaign_default(), rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice="left", criteria={"honesty": "right"}))
        assert created
        assert label.winner == expected
        assert label.criteria == {"honesty": "b" if expected == "a" else "a"}
        assert label.a_on_left is a_on_left


def test_display_order_is_randomised(make_user, make_comparisons):
    """Across many leases both orders occur."""
    make_comparisons(1, required_labels=40)
    orders = {assignment_lease_next(campaign=campaign_default(), rater=make_user()).a_on_left for _ in range(40)}
    assert orders == {True, False}


def test_repeated_submission_stores_one_label(rater, make_comparisons):
    """A double submit returns the first label; a different answer is a conflict."""
    (comparison,) = make_comparisons(1)
    assignment_lease_next(campaign=campaign_default(), rater=rater)
    submission = LabelSubmission(choice="right", strength=3, rationale="clearer")
    first, created = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=submission)
    again, created_again = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=submission)
    assert created and not created_again and first.pk == again.pk
    with pytest.raises(LabelConflict):
        label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"))
    assert PreferenceLabel.objects.count() == 1
    comparison.refresh_from_db()
    assert comparison.label_count == 1 and comparison.status == Comparison.Status.COMPLETE


def test_label_without_lease_is_refused(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    with pytest.raises(NotLeased, match="not leased to you"):
        label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="tie"))


def test_overlap_needs_distinct_raters(make_user, make_comparisons):
    """A comparison needing 2 labels goes to two raters, never twice to one, then closes."""
    (comparison,) = make_comparisons(1, required_labels=2)
    r1, r2, r3 = make_user(), make_user(), make_user()
    for r in (r1, r2):
        a = assignment_lease_next(campaign=campaign_default(), rater=r)
        assert a.comparison_id == comparison.pk
    assert assignment_lease_next(campaign=campaign_default(), rater=r3) is None  # both slots held
    for r in (r1, r2):
        label_record(campaign=campaign_default(), rater=r, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"))
    comparison.refresh_from_db()
    assert comparison.status == Comparison.Status.COMPLETE and comparison.label_count == 2
    assert assignment_lease_next(campaign=campaign_default(), rater=r1) is None


def test_expired_lease_returns_to_the_pool(make_user, make_comparisons):
    (comparison,) = make_comparisons(1)
    r1, r2 = make_user(), make_user()
    now = timezone.now()
    assignment_lease_next(campaign=campaign_default(), rater=r1, now=now)
    assert assignment_lease_next(campaign=campaign_default(), rater=r2, now=now + timedelta(seconds=60)) is None
    later = now + timedelta(hours=1)
    taken = assignment_lease_next(campaign=campaign_default(), rater=r2, now=later)
    assert taken.comparison_id == comparison.pk
    # r1's late label is refused: the slot went to r2.
    with pytest.raises(NotLeased, match="expired"):
        label_record(campaign=campaign_default(), rater=r1, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"), now=later)
    # r1 is never offered that comparison again.
    assert assignment_lease_next(campaign=campaign_default(), rater=r1, now=later) is None


def test_expired_lease_is_honoured_while_the_slot_is_free(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    now = timezone.now()
    assignment_lease_next(campaign=campaign_default(), rater=rater, now=now)
    label, created = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"), now=now + timedelta(hours=2))
    assert created


def test_skip_frees_the_slot_and_hides_the_comparison(make_user, make_comparisons):
    (comparison,) = make_comparisons(1)
    r1, r2 = make_user(), make_user()
    assignment_lease_next(campaign=campaign_default(), rater=r1)
    assignment_skip(campaign=campaign_default(), rater=r1, comparison_id=comparison.pk)
    assert assignment_lease_next(campaign=campaign_default(), rater=r1) is None
    assert assignment_lease_next(campaign=campaign_default(), rater=r2).comparison_id == comparison.pk
    with pytest.raises(NotLeased):
        label_record(campaign=campaign_default(), rater=r1, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"))


def test_undo_reopens_the_comparison_for_the_same_rater(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    assignment_lease_next(campaign=campaign_default(), rater=rater)
    label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"))
    assignment = label_undo_last(campaign=campaign_default(), rater=rater)
    comparison.refresh_from_db()
    assert assignment.comparison_id == comparison.pk and assignment.status == Assignment.Status.LEASED
    assert comparison.status == Comparison.Status.OPEN and comparison.label_count == 0
    assert not PreferenceLabel.objects.exists()
    assert AuditEntry.objects.filter(action="label.undo", actor=rater).exists()
    label, created = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="right"))
    assert created


def test_undo_refused_when_too_old_or_absent(rater, make_comparisons):
    with pytest.raises(NothingToUndo):
        label_undo_last(campaign=campaign_default(), rater=rater)
    (comparison,) = make_comparisons(1)
    assignment_lease_next(campaign=campaign_default(), rater=rater)
    label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"))
    with pytest.raises(NothingToUndo, match="too old"):
        label_undo_last(campaign=campaign_default(), rater=rater, now=timezone.now() + timedelta(hours=1))


def test_time_on_task_defaults_to_time_since_lease(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    now = timezone.now()
    assignment_lease_next(campaign=campaign_default(), rater=rater, now=now)
    label, _ = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"), now=now + timedelta(seconds=7))
    assert label.time_on_task_ms == 7000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"choice": "up"}, "choice must be one of"),
        ({"choice": "left", "strength": 4}, "strength must be"),
        ({"choice": "left", "criteria": {"style": "left"}}, "unknown criteria"),
        ({"choice": "left", "criteria": {"honesty": "a"}}, "criterion 'honesty'"),
        ({"choice": "left", "flags": ("spam",)}, "unknown flags"),
    ],
)
def test_submission_validates_its_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LabelSubmission(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field, message",
    [
        ({"choice": "up"}, "choice", "choice must be one of left, right, tie, both_bad"),
        ({"choice": "left", "strength": 0}, "strength", "strength must be 1, 2 or 3"),
        ({"choice": "left", "criteria": {"style": "left"}}, "criteria", "unknown criteria ['style']; expected some of ['helpfulness', 'harmlessness', 'honesty']"),
        ({"choice": "left", "criteria": {"honesty": "a"}}, "criteria", "criterion 'honesty' must be one of left, right, tie"),
        ({"choice": "left", "flags": ("spam", "ads")}, "flags", "unknown flags: ads, spam"),
    ],
)
def test_a_refused_submission_names_the_field_at_fault(kwargs, field, message, settings):
    settings.LABEL_CRITERIA = ["helpfulness", "harmlessness", "honesty"]
    with pytest.raises(InvalidSubmission) as refused:
        LabelSubmission(**kwargs)
    assert (refused.value.field, str(refused.value)) == (field, message)


def test_the_submissions_criteria_and_flags_are_the_studios(settings):
    settings.LABEL_CRITERIA, settings.LABEL_FLAGS = ["tone"], ["spam"]
    assert (LabelSubmission.criterion_names(), LabelSubmission.flag_names()) == (["tone"], ["spam"])
    assert LabelSubmission(choice="tie", criteria={"tone": "tie"}, flags=("spam",)).strength == 2


def test_roles_do_not_change_labeling(make_user, make_comparisons):
    """Researchers and admins can label too, under the same rules."""
    make_comparisons(2)
    for role in (Role.RESEARCHER, Role.ADMIN):
        user = make_user(role)
        a = assignment_lease_next(campaign=campaign_default(), rater=user)
        label_record(campaign=campaign_default(), rater=user, comparison_id=a.comparison_id, submission=LabelSubmission(choice="tie"))
    assert PreferenceLabel.objects.count() == 2


def test_the_review_marks_follow_the_labels(make_user, make_comparisons, settings):
    """A flag marks the comparison flagged; two raters who disagree mark it disputed; an undo clears what no longer holds."""
    settings.LABEL_FLAGS = ["spam"]
    calm, split = make_comparisons(2, required_labels=2)
    r1, r2 = make_user(), make_user()
    for rater, choices in ((r1, ("left", "left")), (r2, ("left", "right"))):
        for comparison, choice in zip((calm, split), choices):
            Assignment.objects.create(comparison=comparison, rater=rater, a_on_left=True, leased_at=timezone.now(),
                                                   lease_expires_at=timezone.now() + timedelta(minutes=5))
            flags = ("spam",) if rater == r1 and comparison == calm else ()
            label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice=choice, flags=flags))
    calm.refresh_from_db(), split.refresh_from_db()
    assert (calm.flagged, calm.disputed, split.flagged, split.disputed) == (True, False, False, True)
    label_undo_last(campaign=campaign_default(), rater=r2)  # r2's last label was on the split pair
    split.refresh_from_db()
    assert not split.disputed and split.label_count == 1
