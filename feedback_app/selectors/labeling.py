"""What a rater can be given, and what they hold."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from feedback_app.models import Assignment, Comparison, PreferenceLabel


def _active_leases(now: datetime) -> QuerySet[Assignment]:
    return Assignment.objects.filter(status=Assignment.Status.LEASED, lease_expires_at__gt=now)


def active_lease_count(*, comparison_id: int, now: datetime) -> int:
    """Return how many unexpired, unlabelled leases hold a slot of the comparison."""
    return _active_leases(now).filter(comparison_id=comparison_id).count()


def assignment_current_for_rater(*, rater, campaign_id: int, now: datetime, other_than: int | None = None) -> Assignment | None:
    """Return the rater's oldest unexpired lease on an open comparison of the campaign (other than assignment ``other_than``), if any."""
    held = (
        _active_leases(now)
        .filter(rater=rater, comparison__status=Comparison.Status.OPEN, comparison__prompt__campaign_id=campaign_id)
        .select_related("comparison__prompt", "comparison__response_a", "comparison__response_b")
        .order_by("leased_at", "id")
    )
    return (held.exclude(pk=other_than) if other_than is not None else held).first()


def _held_by(rater) -> QuerySet:
    """The ids of every comparison the rater ever held, as a subquery.

    ``NOT IN`` this set reads the rater's own assignments once (PostgreSQL hashes them); a
    correlated ``NOT EXISTS`` let the planner walk every rater's assignments of older
    comparisons instead, a cost that grew with the whole history.
    """
    return Assignment.objects.filter(rater=rater).values("comparison_id")


def comparisons_leasable_for_rater(*, rater, campaign_id: int, now: datetime) -> QuerySet[Comparison]:
    """Return the campaign's open comparisons the rater never held that still have a free slot, oldest first."""
    leases = (
        _active_leases(now)
        .filter(comparison=OuterRef("pk"))
        .order_by()
        .values("comparison")
        .annotate(n=Count("id"))
        .values("n")
    )
    return (
        Comparison.objects.filter(status=Comparison.Status.OPEN, is_gold=False, prompt__campaign_id=campaign_id)
        .exclude(pk__in=_held_by(rater))
        .annotate(leased=Coalesce(Subquery(leases, output_field=IntegerField()), Value(0)))
        .filter(label_count__lt=F("required_labels") - F("leased"))
        .order_by("id")
    )


def comparisons_gold_for_rater(*, rater, campaign_id: int) -> QuerySet[Comparison]:
    """Return the campaign's open gold pairs the rater never held, oldest first."""
    return (
        Comparison.objects.filter(status=Comparison.Status.OPEN, is_gold=True, prompt__campaign_id=campaign_id)
        .exclude(pk__in=_held_by(rater))
        .order_by("id")
    )


def labels_today_count(*, rater, campaign_id: int) -> int:
    """Return how many labels the rater gave the campaign since local midnight."""
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return PreferenceLabel.objects.filter(rater=rater, created_at__gte=start, comparison__prompt__campaign_id=campaign_id).count()


def labels_for_rater_newest(*, rater, campaign_id: int) -> QuerySet[PreferenceLabel]:
    """Return the rater's labels in the campaign, newest first."""
    return PreferenceLabel.objects.filter(rater=rater, comparison__prompt__campaign_id=campaign_id).order_by("-created_at", "-id")


def rater_has_undoable_label(*, rater, campaign_id: int, now: datetime, window_seconds: int) -> bool:
    """Return whether the rater's last label in the campaign may still be undone."""
    last = labels_for_rater_newest(rater=rater, campaign_id=campaign_id).values("created_at", "assignment_id").first()
    return bool(last and last["assignment_id"] and (now - last["created_at"]).total_seconds() <= window_seconds)


def assignment_held_by_rater(*, rater, comparison_id: int, now: datetime) -> Assignment | None:
    """Return the rater's unexpired lease on the comparison, with what the page shows joined in; None if not held."""
    return (
        _active_leases(now)
        .filter(rater=rater, comparison_id=comparison_id)
        .select_related("comparison__prompt", "comparison__response_a", "comparison__response_b")
        .first()
    )


def assignment_with_comparison(*, assignment_id: int) -> Assignment:
    """Return the assignment with its comparison, prompt and responses joined in."""
    return Assignment.objects.select_related("comparison__prompt", "comparison__response_a", "comparison__response_b").get(pk=assignment_id)
