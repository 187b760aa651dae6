"""Qualification: a new rater first labels K gold pairs of the campaign and is admitted only at a set accuracy.

Asked for with the campaign setting ``qualification_pairs`` (K > 0). The first time a rater needs a
comparison under it, they start it, or are exempt when they labelled before it was asked for
(staff are never asked). While pending, they are leased only gold pairs; once K are labelled the
result is graded and recorded on their membership of the campaign, with an audit entry: admitted raters label as
anyone, the others are leased nothing more (a lease they still held goes back to the pool). Raising K or the accuracy later does not re-grade.
"""

from __future__ import annotations

from django.utils import timezone

from feedback_app.models import Assignment, AuditEntry, Campaign, CampaignMember, PreferenceLabel, Role
from feedback_app.selectors.campaigns import campaign_role
from feedback_app.services.campaigns import member_state

Status = CampaignMember.Qualification


def qualification_status(*, rater, campaign: Campaign) -> str:
    """Return where ``rater`` stands with the campaign's qualification now, starting it (or exempting them) on first need.

    "" when none is asked for, or for staff.
    """
    if not campaign.qualification_pairs or campaign_role(user=rater, campaign=campaign) != Role.RATER:
        return Status.NONE
    member = member_state(campaign=campaign, user=rater)
    if member.qualification:
        return member.qualification
    exempt = PreferenceLabel.objects.filter(rater=rater, campaign=campaign).exists()
    status = Status.EXEMPT if exempt else Status.PENDING
    CampaignMember.objects.filter(pk=member.pk, qualification="").update(qualification=status, qualification_at=timezone.now() if exempt else None)
    member.refresh_from_db(fields=["qualification"])
    return member.qualification


def qualification_grade(*, rater, campaign: Campaign) -> str:
    """Grade a pending rater once they labelled the campaign qualification's K gold pairs; return their status (pending before that).

    Call inside the transaction that stored a gold label.
    """
    member = CampaignMember.objects.select_for_update().filter(campaign=campaign, user=rater).first()
    if member is None or member.qualification != Status.PENDING:
        return member.qualification if member else Status.NONE
    k = max(1, campaign.qualification_pairs)
    answers = list(PreferenceLabel.objects.filter(rater=rater, comparison__is_gold=True, campaign=campaign).order_by("id")
                   .values_list("winner", "comparison__gold_winner")[:k])
    if len(answers) < k:
        return Status.PENDING
    correct = sum(winner == expected for winner, expected in answers)
    passed = correct / k >= campaign.qualification_accuracy
    member.qualification = Status.PASSED if passed else Status.FAILED
    member.qualification_correct, member.qualification_n, member.qualification_at = correct, k, timezone.now()
    member.save(update_fields=["qualification", "qualification_correct", "qualification_n", "qualification_at"])
    if not passed:  # a lease the label page held ready goes back to the pool
        Assignment.objects.filter(rater=rater, status=Assignment.Status.LEASED, comparison__prompt__campaign=campaign).update(
            status=Assignment.Status.SKIPPED, finished_at=timezone.now())
    AuditEntry.objects.create(actor=None, action="rater.qualification", target=f"user:{rater.pk}",
                              details={"campaign": campaign.slug, "result": member.qualification, "correct": correct, "of": k,
                                       "required": campaign.qualification_accuracy})
    return member.qualification
