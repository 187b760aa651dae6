"""Labels counted per closed hour, so a campaign's totals cost an hour's labels to read, not its whole history.

A campaign's total is the sum of its closed hours (``LabelHourCount``) plus a live count of the
labels after the last closed hour; the dashboard's labels today and per hour read the same rows.
An hour closes once it ended ``CLOSE_AFTER`` ago, so a write that began in it and committed
later is still counted; a label deleted from a closed hour (an admin's delete, a cascade, an
undo) reopens that hour and every later one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from feedback_app.models import LabelHourCount, LabelHoursClosed, PreferenceLabel
from feedback_app.selectors.label_tally import MARK_ID, hour_floor

CLOSE_AFTER = timedelta(hours=1)


def label_hours_close(*, now: datetime | None = None, max_hours: int = 24 * 60) -> int:
    """Count the labels of up to ``max_hours`` more hours that ended ``CLOSE_AFTER`` ago; return how many hours closed.

    One range read of their labels (``created_at`` is indexed), grouped by campaign and hour.
    """
    last_end = hour_floor((now or timezone.now()) - CLOSE_AFTER)
    with transaction.atomic():
        mark = LabelHoursClosed.objects.select_for_update().filter(pk=MARK_ID).first()
        if mark is None:
            first = PreferenceLabel.objects.aggregate(first=Min("created_at"))["first"]
            if first is None:
                return 0
            mark = LabelHoursClosed.objects.create(pk=MARK_ID, through=hour_floor(first))
        end = min(last_end, mark.through + timedelta(hours=max_hours))
        if end <= mark.through:
            return 0
        counts = (PreferenceLabel.objects.filter(created_at__gte=mark.through, created_at__lt=end)
                  .annotate(hour=TruncHour("created_at", tzinfo=dt_timezone.utc)).values("comparison__prompt__campaign_id", "hour")
                  .annotate(n=Count("id"), raters=Count("id", filter=Q(rater__isnull=False)))
                  .values_list("comparison__prompt__campaign_id", "hour", "n", "raters"))
        LabelHourCount.objects.bulk_create([LabelHourCount(campaign_id=campaign_id, hour=hour, labels=n, rater_labels=raters)
                                            for campaign_id, hour, n, raters in counts], batch_size=1000)
        closed = int((end - mark.through) / timedelta(hours=1))
        mark.through = end
        mark.save(update_fields=["through"])
    return closed


def label_hour_reopen(*, created_at: datetime) -> None:
    """A label made at ``created_at`` was deleted: when its hour is closed, reopen it and every later hour."""
    hour = hour_floor(created_at)
    with transaction.atomic():
        if LabelHoursClosed.objects.filter(pk=MARK_ID, through__gt=hour).update(through=hour):
            LabelHourCount.objects.filter(hour__gte=hour).delete()
