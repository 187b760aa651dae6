"""Qualification: a new rater first labels K gold pairs of the campaign and is admitted only at a set accuracy.

Asked for with the campaign setting ``qualification_pairs`` (K > 0). The first time a rater needs a
comparison under it, they start it, or are exempt when they labelled before it was asked for
(staff are never asked). While pending, they are leased only gold pairs; once K are labelled the
result is graded and recorded on their profile, with an audit entry: admitted raters label as
anyone, the others are leased nothing more (a lease they still held goes back to the pool). Raising K or the accuracy later does not re-grade.
"""

from __future__ import annotations

from django.utils import timezone

from feedback_app.models import Assignment, AuditEntry, PreferenceLabel, Profile, Role, StudioSettings

Status = Profile.Qualification


def qualification_status(*, rater, config: StudioSettings) -> str:
    """Return where ``rater`` stands with the qualification now, starting it (or exempting them) on first need.

    "" when none is asked for, or for staff.
    """
    profile = getattr(rater, "profile", None)
    if not config.qualification_pairs or profile is None or profile.role != Role.RATER:
        return Status.NONE
    if profile.qualification:
        return profile.qualification
    exempt = PreferenceLabel.objects.filter(rater=rater).exists()
    status = Status.EXEMPT if exempt else Status.PENDING
    Profile.objects.filter(pk=profile.pk, qualification="").update(qualification=status, qualification_at=timezone.now() if exempt else None)
    profile.refresh_from_db(fields=["qualification"])
    return profile.qualification


def qualification_grade(*, rater, config: StudioSettings) -> str:
    """Grade a pending rater once they labelled the qualification's K gold pairs; return their status (pending before that).

    Call inside the transaction that stored a gold label.
    """
    profile = Profile.objects.select_for_update().get(user=rater)
    if profile.qualification != Status.PENDING:
        return profile.qualification
    k = max(1, config.qualification_pairs)
    answers = list(PreferenceLabel.objects.filter(rater=rater, comparison__is_gold=True).order_by("id")
                   .values_list("winner", "comparison__gold_winner")[:k])
    if len(answers) < k:
        return Status.PENDING
    correct = sum(winner == expected for winner, expected in answers)
    passed = correct / k >= config.qualification_accuracy
    profile.qualification = Status.PASSED if passed else Status.FAILED
    profile.qualification_correct, profile.qualification_n, profile.qualification_at = correct, k, timezone.now()
    profile.save(update_fields=["qualification", "qualification_correct", "qualification_n", "qualification_at"])
    rater.profile = profile
    if not passed:  # a lease the label page held ready goes back to the pool
        Assignment.objects.filter(rater=rater, status=Assignment.Status.LEASED).update(status=Assignment.Status.SKIPPED, finished_at=timezone.now())
    AuditEntry.objects.create(actor=None, action="rater.qualification", target=f"user:{rater.pk}",
                              details={"result": profile.qualification, "correct": correct, "of": k, "required": config.qualification_accuracy})
    return profile.qualification
