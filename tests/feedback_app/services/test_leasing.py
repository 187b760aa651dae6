"""The slot count a comparison's row keeps for the pick (``Comparison.leases_held``), against the leases themselves."""

from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.models import Assignment, Comparison
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services.labeling import LabelSubmission, assignment_skip, label_record, label_undo_last
from feedback_app.services.leasing import assignment_lease_next

pytestmark = pytest.mark.django_db


def _row(comparison: Comparison) -> tuple[int, object]:
    comparison.refresh_from_db()
    return comparison.leases_held, comparison.leases_recount_at


def _leases(comparison: Comparison, now) -> tuple[int, object]:
    """What the row should say at ``now``: the unexpired, unlabelled leases, and the first of their expiries."""
    held = Assignment.objects.filter(comparison=comparison, status=Assignment.Status.LEASED, lease_expires_at__gt=now)
    return held.count(), min(held.values_list("lease_expires_at", flat=True), default=None)


def test_the_row_counts_the_leases_after_every_lease_label_skip_undo_and_expiry(make_user, make_comparisons):
    (comparison,) = make_comparisons(1, required_labels=3)
    campaign = campaign_default()
    r1, r2, r3, r4 = (make_user() for _ in range(4))
    now = timezone.now()

    def label(rater, at):
        label_record(campaign=campaign, rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"), now=at)

    steps = [
        (now, lambda at: assignment_lease_next(campaign=campaign, rater=r1, now=at)),
        (now + timedelta(seconds=5), lambda at: assignment_lease_next(campaign=campaign, rater=r2, now=at)),
        (now + timedelta(seconds=10), lambda at: label(r1, at)),
        (now + timedelta(seconds=15), lambda at: assignment_skip(campaign=campaign, rater=r2, comparison_id=comparison.pk, now=at)),
        (now + timedelta(seconds=20), lambda at: assignment_lease_next(campaign=campaign, rater=r3, now=at)),
        (now + timedelta(seconds=25), lambda at: label(r3, at)),
        (now + timedelta(seconds=30), lambda at: label_undo_last(campaign=campaign, rater=r3, now=at)),
        # r3's renewed lease expires unlabelled; r4's lease counts again and leaves it out
        (now + timedelta(hours=2), lambda at: assignment_lease_next(campaign=campaign, rater=r4, now=at)),
    ]
    seen = []
    for at, step in steps:
        assert step(at) is not False
        assert _row(comparison) == _leases(comparison, at)
        seen.append(_row(comparison)[0])
    assert seen == [1, 2, 1, 0, 1, 0, 1, 1]


def test_the_pick_passes_a_row_whose_slots_are_held_and_counts_again_once_a_lease_expired(make_user, make_comparisons):
    first, second = make_comparisons(2)
    campaign = campaign_default()
    now = timezone.now()
    assert assignment_lease_next(campaign=campaign, rater=make_user(), now=now).comparison_id == first.pk
    assert assignment_lease_next(campaign=campaign, rater=make_user(), now=now + timedelta(seconds=60)).comparison_id == second.pk
    # The first lease expired without a label: the oldest comparison is offered again, though its row still counts the lease.
    later = now + timedelta(hours=1)
    assert _row(first)[0] == 1
    assert assignment_lease_next(campaign=campaign, rater=make_user(), now=later).comparison_id == first.pk
    assert _row(first) == _leases(first, later)


def test_a_count_that_drifted_high_strands_no_comparison(make_user, make_comparisons):
    """A row that claims its slots are held (a lease ended without a write to it) is leased once nothing else is left,
    and the lease counts it right again."""
    stuck, fresh = make_comparisons(2)
    Comparison.objects.filter(pk=stuck.pk).update(leases_held=1, leases_recount_at=timezone.now() + timedelta(days=1))
    campaign, rater = campaign_default(), make_user()
    lease = assignment_lease_next(campaign=campaign, rater=rater)
    assert lease.comparison_id == fresh.pk
    label_record(campaign=campaign, rater=rater, comparison_id=fresh.pk, submission=LabelSubmission(choice="left"))
    now = timezone.now()
    assert assignment_lease_next(campaign=campaign, rater=rater, now=now).comparison_id == stuck.pk
    assert _row(stuck) == _leases(stuck, now) and _row(stuck)[0] == 1


def test_a_count_that_drifted_low_leases_no_slot_that_is_held(make_user, make_comparisons):
    """A row that counts fewer leases than hold its slots is picked, found full once locked and counted right: no lease is
    made there (on PostgreSQL the statement that counts them makes the lease, only where a slot is free), and the rater
    gets the next comparison."""
    held, fresh = make_comparisons(2)
    campaign, now = campaign_default(), timezone.now()
    assert assignment_lease_next(campaign=campaign, rater=make_user(), now=now).comparison_id == held.pk
    Comparison.objects.filter(pk=held.pk).update(leases_held=0, leases_recount_at=None)
    rater = make_user()
    assert assignment_lease_next(campaign=campaign, rater=rater, now=now).comparison_id == fresh.pk
    assert list(Assignment.objects.filter(rater=rater).values_list("comparison_id", flat=True)) == [fresh.pk]
    assert _row(held) == _leases(held, now) and _row(held)[0] == 1 and _row(fresh) == _leases(fresh, now)


def test_a_comparison_whose_lease_ran_out_is_offered_before_older_free_ones(make_user, make_comparisons):
    """The comparison a rater walked away from (their lease ran out unlabelled) is offered first, before an older one whose
    slot is free: the stalled ones are finished first. Its row counted the lease until then; the new lease counts it right."""
    skipped, abandoned, fresh = make_comparisons(3)
    campaign, now = campaign_default(), timezone.now()
    first, away = make_user(), make_user()
    assert assignment_lease_next(campaign=campaign, rater=first, now=now).comparison_id == skipped.pk
    assert assignment_lease_next(campaign=campaign, rater=away, now=now).comparison_id == abandoned.pk
    assignment_skip(campaign=campaign, rater=first, comparison_id=skipped.pk, now=now)
    later = now + timedelta(seconds=campaign.lease_time + 1)
    assert _row(abandoned)[0] == 1
    assert assignment_lease_next(campaign=campaign, rater=make_user(), now=later).comparison_id == abandoned.pk
    assert _row(abandoned) == _leases(abandoned, later)
    assert assignment_lease_next(campaign=campaign, rater=make_user(), now=later).comparison_id == skipped.pk
