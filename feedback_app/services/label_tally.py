"""Labels counted per closed day, so a campaign's total costs a day's labels to read, not its whole history;
and the raters' agreement of each closed day (``AgreementDay``), so the dashboard's 30 days read 30 rows.

A campaign's total is the sum of its closed days (``LabelDayCount``) plus a live count of the
labels after the last closed day. A day closes once it ended ``CLOSE_AFTER`` ago, so a write
that began before midnight and committed after it is still counted; a label deleted from a
closed day (an admin's delete, a cascade) reopens that day and every later one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from feedback_app.models import AgreementDay, Comparison, LabelDayCount, LabelDaysClosed, PreferenceLabel
from feedback_app.selectors.label_tally import MARK_ID, day_start
from feedback_app.selectors.quality import agreement_of_comparisons_completed

CLOSE_AFTER = timedelta(hours=1)


def label_days_close(*, now: datetime | None = None, max_days: int = 60) -> int:
    """Count the labels of up to ``max_days`` more days that ended ``CLOSE_AFTER`` ago; return how many days closed.

    Each day is one range read of its labels (``created_at`` is indexed), grouped by campaign.
    """
    last_closable = ((now or timezone.now()) - CLOSE_AFTER).astimezone(dt_timezone.utc).date() - timedelta(days=1)
    closed = 0
    with transaction.atomic():
        mark = LabelDaysClosed.objects.select_for_update().filter(pk=MARK_ID).first()
        if mark is None:
            first = PreferenceLabel.objects.aggregate(first=Min("created_at"))["first"]
            if first is None:
                return 0
            mark = LabelDaysClosed.objects.create(pk=MARK_ID, through=first.astimezone(dt_timezone.utc).date() - timedelta(days=1))
        while mark.through < last_closable and closed < max_days:
            day = mark.through + timedelta(days=1)
            counts = (PreferenceLabel.objects.filter(created_at__gte=day_start(day), created_at__lt=day_start(day + timedelta(days=1)))
                      .values("comparison__prompt__campaign_id").annotate(n=Count("id")).values_list("comparison__prompt__campaign_id", "n"))
            LabelDayCount.objects.bulk_create([LabelDayCount(campaign_id=campaign_id, day=day, labels=n) for campaign_id, n in counts])
            AgreementDay.objects.bulk_create([AgreementDay(campaign_id=campaign_id, day=day, **figures)
                                              for campaign_id, figures in _agreement_of_day(day).items()])
            mark.through = day
            closed += 1
        mark.save(update_fields=["through"])
    return closed


def _agreement_of_day(day) -> dict[int, dict]:
    """Return each campaign's agreement over its comparisons with overlap that completed on ``day``."""
    start, end = day_start(day), day_start(day + timedelta(days=1))
    campaigns = (Comparison.objects.filter(completed_at__gte=start, completed_at__lt=end, label_count__gte=2)
                 .order_by().values_list("prompt__campaign_id", flat=True).distinct())  # no ordering: DISTINCT would include its column
    figures = {campaign_id: agreement_of_comparisons_completed(campaign_id=campaign_id, start=start, end=end) for campaign_id in campaigns}
    return {campaign_id: f for campaign_id, f in figures.items() if f is not None}


def label_day_reopen(*, created_at: datetime) -> None:
    """A label made at ``created_at`` was deleted: when its day is closed, reopen it and every later day."""
    day = created_at.astimezone(dt_timezone.utc).date()
    with transaction.atomic():
        if LabelDaysClosed.objects.filter(pk=MARK_ID, through__gte=day).update(through=day - timedelta(days=1)):
            LabelDayCount.objects.filter(day__gte=day).delete()
            AgreementDay.objects.filter(day__gte=day).delete()
