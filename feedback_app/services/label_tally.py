"""Labels counted per closed day, so a campaign's total costs a day's labels to read, not its whole history.

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

from feedback_app.models import LabelDayCount, LabelDaysClosed, PreferenceLabel
from feedback_app.selectors.label_tally import MARK_ID, day_start

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
            mark.through = day
            closed += 1
        mark.save(update_fields=["through"])
    return closed


def label_day_reopen(*, created_at: datetime) -> None:
    """A label made at ``created_at`` was deleted: when its day is closed, reopen it and every later day."""
    day = created_at.astimezone(dt_timezone.utc).date()
    with transaction.atomic():
        if LabelDaysClosed.objects.filter(pk=MARK_ID, through__gte=day).update(through=day - timedelta(days=1)):
            LabelDayCount.objects.filter(day__gte=day).delete()
