"""Gold pairs and adjudication."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from feedback_app import events
from feedback_app.models import DEFAULT_CAMPAIGN_ID, AuditEntry, Comparison, Winner
from feedback_app.selectors.queue_head import queue_head_forget
from feedback_app.services.quality_tally import quality_tally_reopen


class QualityError(Exception):
    """A request that cannot be carried out; the message says why."""


@transaction.atomic
def comparison_mark_gold(*, comparison: Comparison, winner: str, user) -> Comparison:
    """Make a comparison a gold pair with the expected answer; it is then shown to every rater once."""
    if winner not in Winner.values:
        raise QualityError(f"the expected answer must be one of {', '.join(Winner.values)}")
    locked = Comparison.objects.select_for_update().get(pk=comparison.pk)
    quality_tally_reopen(comparison_id=locked.pk)  # its labels now count as gold answers
    locked.is_gold, locked.gold_winner = True, winner
    locked.status, locked.completed_at = Comparison.Status.OPEN, None
    locked.save(update_fields=["is_gold", "gold_winner", "status", "completed_at"])
    AuditEntry.objects.create(actor=user, action="comparison.gold", target=f"comparison:{locked.pk}", details={"winner": winner})
    events.comparisons_supplied(count=1, campaign_id=locked.prompt.campaign_id)
    return locked


@transaction.atomic
def comparison_unmark_gold(*, comparison: Comparison, user) -> Comparison:
    """Return a gold pair to the ordinary pool (closed if it has the labels it needs)."""
    locked = Comparison.objects.select_for_update().get(pk=comparison.pk)
    quality_tally_reopen(comparison_id=locked.pk)  # its labels, tallied as a gold pair's, now count as an ordinary one's
    locked.is_gold, locked.gold_winner = False, ""
    # A gold pair may hold more labels than it asked for; they all stay.
    locked.required_labels = max(locked.required_labels, locked.label_count)
    if locked.label_count >= locked.required_labels:
        locked.status, locked.completed_at = Comparison.Status.COMPLETE, timezone.now()
    locked.save(update_fields=["is_gold", "gold_winner", "required_labels", "status", "completed_at"])
    if locked.status == Comparison.Status.OPEN:  # back in the queue, behind its head perhaps
        queue_head_forget(locked.prompt.campaign_id)
    AuditEntry.objects.create(actor=user, action="comparison.ungold", target=f"comparison:{locked.pk}")
    return locked


def comparisons_promote_unanimous_to_gold(*, user, campaign_id: int = DEFAULT_CAMPAIGN_ID, min_labels: int = 2, limit: int = 100) -> int:
    """Make gold pairs of the campaign's complete comparisons where all of 2+ raters chose the same response."""
    candidates = (
        Comparison.objects.filter(prompt__campaign_id=campaign_id, is_gold=False, status=Comparison.Status.COMPLETE, label_count__gte=min_labels, excluded=False)
        .annotate(winners=Count("labels__winner", distinct=True))
        .filter(winners=1)
        .exclude(labels__winner__in=[Winner.TIE, Winner.BOTH_BAD])
        .order_by("-id")[:limit]
    )
    promoted = 0
    for comparison in candidates:
        winner = comparison.labels.values_list("winner", flat=True).first()
        comparison_mark_gold(comparison=comparison, winner=winner, user=user)
        promoted += 1
    return promoted


@transaction.atomic
def comparison_adjudicate(*, comparison: Comparison, winner: str, exclude: bool, note: str, user) -> Comparison:
    """Record an admin's verdict on a flagged or disputed comparison.

    ``winner`` (A, B, tie or both bad) replaces the raters' votes in training; ``exclude``
    leaves the comparison out of training altogether. Either way it leaves the review queue.
    """
    if winner and winner not in Winner.values:
        raise QualityError(f"the verdict must be one of {', '.join(Winner.values)} (or none)")
    if not winner and not exclude and not note:
        raise QualityError("give a verdict, exclude the comparison, or write a note")
    locked = Comparison.objects.select_for_update().get(pk=comparison.pk)
    locked.adjudicated_winner, locked.excluded, locked.review_note = winner, exclude, note
    locked.reviewed_by, locked.reviewed_at = user, timezone.now()
    locked.save(update_fields=["adjudicated_winner", "excluded", "review_note", "reviewed_by", "reviewed_at"])
    AuditEntry.objects.create(actor=user, action="comparison.adjudicate", target=f"comparison:{locked.pk}",
                              details={"winner": winner, "exclude": exclude, "note": note})
    return locked
