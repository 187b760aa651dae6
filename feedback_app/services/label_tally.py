"""Labels counted per hour up to a closed instant, so a campaign's totals cost the last minutes' labels to read, not its whole history.

A campaign's total is the sum of its hour rows (``LabelHourCount``) plus a live count of the
labels after the closed instant (``LabelHoursClosed.through``); the dashboard's labels today and
per hour read the same rows. A close, every minute, adds the labels made up to ``SETTLE`` ago (to
the minute) to their hours' rows, the hour it stopped in last time included, so a busy studio's
live window is a minute or two of labels, not an hour or two (a million at 300 labels/s). A
label's transaction commits within ``SETTLE`` of its ``created_at``; an import, whose transaction
can take longer, reopens what it wrote behind once it commits (``label_hours_reopen_after_commit``),
as does a label deleted from a closed stretch (an admin's delete, a cascade). A rater's undo takes
its label out of its hour's row instead (``label_hour_withdraw``): undos are common, and each
reopening would read the hour's labels again.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import Count, F, Min, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from feedback_app.models import LabelHourCount, LabelHoursClosed, LabelMinuteCount, PreferenceLabel
from feedback_app.selectors.label_tally import MARK_ID, MINUTES_KEPT, hour_floor, minute_floor

SETTLE = timedelta(minutes=1)


def label_hours_close(*, now: datetime | None = None, max_hours: int = 24 * 60) -> int:
    """Add the labels made since the last close and up to ``SETTLE`` ago (to the minute; at most ``max_hours`` of them) to their
    campaigns' hour rows; return how many minutes closed.

    One range read of their labels (``created_at`` is indexed), grouped by campaign and hour. The
    hour the last close stopped in already has rows: its new labels are added to them.
    """
    last_end = minute_floor((now or timezone.now()) - SETTLE)
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
        by_minute = (PreferenceLabel.objects.filter(created_at__gte=mark.through, created_at__lt=end)
                     .annotate(minute=TruncMinute("created_at", tzinfo=dt_timezone.utc)).values("campaign_id", "minute")
                     .annotate(n=Count("id"), raters=Count("id", filter=Q(rater__isnull=False)))
                     .values_list("campaign_id", "minute", "n", "raters"))
        by_hour: dict[tuple[int, datetime], list[int]] = defaultdict(lambda: [0, 0])
        minutes = []
        for campaign_id, minute, n, raters in by_minute:
            counts = by_hour[campaign_id, hour_floor(minute)]
            counts[0] += n
            counts[1] += raters
            if minute >= end - MINUTES_KEPT and raters:
                minutes.append(LabelMinuteCount(campaign_id=campaign_id, minute=minute, rater_labels=raters))
        begun = hour_floor(mark.through) if hour_floor(mark.through) != mark.through else None  # the hour the last close stopped in
        new = []
        for (campaign_id, hour), (n, raters) in by_hour.items():
            if hour == begun and LabelHourCount.objects.filter(campaign_id=campaign_id, hour=hour).update(
                    labels=F("labels") + n, rater_labels=F("rater_labels") + raters):
                continue  # added to the row the last close wrote
            new.append(LabelHourCount(campaign_id=campaign_id, hour=hour, labels=n, rater_labels=raters))
        LabelHourCount.objects.bulk_create(new, batch_size=1000)
        LabelMinuteCount.objects.bulk_create(minutes, batch_size=1000)  # whole minutes, each closed once
        LabelMinuteCount.objects.filter(minute__lt=end - MINUTES_KEPT).delete()
        closed = int((end - mark.through) / timedelta(minutes=1))
        mark.through = end
        mark.save(update_fields=["through"])
    return closed


def label_hours_reopen_after_commit(*, created_at: datetime) -> None:
    """Call in a transaction that wrote labels made from ``created_at`` on (an import, which may outlast ``SETTLE``): once it
    commits, reopen the stretch a close may have passed meanwhile, so its labels are counted."""
    transaction.on_commit(lambda: label_hour_reopen(created_at=created_at))


def label_hour_reopen(*, created_at: datetime) -> None:
    """A label made at ``created_at`` was deleted (or committed late): when a close passed its hour's start, reopen it and every
    later hour."""
    hour = hour_floor(created_at)
    with transaction.atomic():  # only when it lay before the closed instant: a live label's undo costs nothing
        if LabelHoursClosed.objects.filter(pk=MARK_ID, through__gt=created_at).update(through=hour):
            LabelHourCount.objects.filter(hour__gte=hour).delete()
            LabelMinuteCount.objects.filter(minute__gte=hour).delete()


def label_hour_withdraw(*, label: PreferenceLabel, campaign_id: int, now: datetime | None = None) -> bool:
    """A rater undoes ``label`` (not yet deleted): take it out of its hour's row if a close counted it; return whether one did.

    Call it in the undo's transaction. A label made in the last half of ``SETTLE`` cannot have been
    closed, nor can a close reach it before the undo commits, so no lock is taken for it (most undos
    follow their label within seconds); for an older one the closes' lock is held to the commit.
    """
    if label.created_at >= (now or timezone.now()) - SETTLE / 2:
        return False
    with transaction.atomic():
        if LabelHoursClosed.objects.select_for_update().filter(pk=MARK_ID, through__gt=label.created_at).first() is None:
            return False
        LabelHourCount.objects.filter(campaign_id=campaign_id, hour=hour_floor(label.created_at)).update(
            labels=F("labels") - 1, rater_labels=F("rater_labels") - int(label.rater_id is not None))
        if label.rater_id is not None:
            LabelMinuteCount.objects.filter(campaign_id=campaign_id, minute=minute_floor(label.created_at)).update(
                rater_labels=F("rater_labels") - 1)
    return True
