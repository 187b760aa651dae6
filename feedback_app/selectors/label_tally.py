"""A campaign's label total from its closed days and a live count after them (``services.label_tally`` closes the days)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone as dt_timezone

from django.db.models import Sum

from feedback_app.models import DEFAULT_CAMPAIGN_ID, LabelDayCount, LabelDaysClosed, PreferenceLabel

MARK_ID = 1  # LabelDaysClosed holds one row


def day_start(day: date) -> datetime:
    """Return the UTC midnight that starts ``day``."""
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def label_days_closed_through() -> date | None:
    """Return the last closed day, or None when none is."""
    return LabelDaysClosed.objects.filter(pk=MARK_ID).values_list("through", flat=True).first()


def labels_total_count(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> int:
    """Return how many labels (raters', imported and AI) the campaign holds: its closed days' counts plus the labels since."""
    labels = PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id)
    through = label_days_closed_through()
    if through is None:
        return labels.count()
    closed = LabelDayCount.objects.filter(campaign_id=campaign_id, day__lte=through).aggregate(n=Sum("labels"))["n"] or 0
    return closed + labels.filter(created_at__gte=day_start(through + timedelta(days=1))).count()
