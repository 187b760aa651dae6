"""Labels counted from hour rows up to a closed instant plus a live count after it (``services.label_tally`` closes, every minute).

A campaign's total, its raters' labels today and per hour read at most one row per hour and a
count of the labels of the last minutes, not the history; the rates of the last minutes (labels
per minute, active raters) read their window alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone as dt_timezone

from django.db.models import Count, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Assignment, LabelHourCount, LabelHoursClosed, LabelMinuteCount, PreferenceLabel

MARK_ID = 1  # LabelHoursClosed and QualityTallied hold one row each
MINUTES_KEPT = timedelta(hours=1)  # LabelMinuteCount's rows before the closed instant


def day_start(day: date) -> datetime:
    """Return the UTC midnight that starts ``day``."""
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def hour_floor(moment: datetime) -> datetime:
    """Return the start of the UTC hour holding ``moment``."""
    return moment.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def minute_floor(moment: datetime) -> datetime:
    """Return the start of the UTC minute holding ``moment``."""
    return moment.astimezone(dt_timezone.utc).replace(second=0, microsecond=0)


def label_hours_closed_through() -> datetime | None:
    """Return the closed instant (``LabelHourCount`` holds every label before it), or None before the first close."""
    return LabelHoursClosed.objects.filter(pk=MARK_ID).values_list("through", flat=True).first()


def _labels(campaign_id: int):
    return PreferenceLabel.objects.filter(campaign_id=campaign_id)


def labels_in_window_by_hour(*, campaign_id: int, start: datetime, end: datetime | None = None) -> dict[datetime, tuple[int, int]]:
    """Return the campaign's labels made in [start, end) per UTC hour (keyed by its start): ``(all of them, the raters')``.

    Counted by the database in one range of the (campaign, created_at) index (``label_campaign_created``), so the cost
    follows the campaign's labels in the window. (Read into Python, the rows of a busy studio's open hour were a million
    a push; with each label's campaign looked up through its comparison and prompt, a push at 300 labels/s cost 40-80 ms
    of the database's time.)
    """
    labels = PreferenceLabel.objects.filter(campaign_id=campaign_id, created_at__gte=start)
    if end is not None:
        labels = labels.filter(created_at__lt=end)
    rows = (labels.annotate(hour=TruncHour("created_at", tzinfo=dt_timezone.utc))
            .order_by().values("hour").annotate(n=Count("id"), raters=Count("rater_id")).values_list("hour", "n", "raters"))
    return {hour: (n, raters) for hour, n, raters in rows}


@dataclass(frozen=True)
class LiveHours:
    """The closed instant, and the campaign's labels per hour since it (``labels_in_window_by_hour``): read once for the
    counters that all add them to the closed rows (a dashboard push's total and labels today)."""

    through: datetime | None
    by_hour: dict[datetime, tuple[int, int]]


def label_hours_live(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> LiveHours:
    """Return the closed instant and the campaign's labels per hour since it."""
    through = label_hours_closed_through()
    return LiveHours(through, labels_in_window_by_hour(campaign_id=campaign_id, start=through) if through is not None else {})


def labels_total_count(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, live: LiveHours | None = None) -> int:
    """Return how many labels (raters', imported and AI) the campaign holds: its closed hours' counts plus the labels since."""
    live = live or label_hours_live(campaign_id=campaign_id)
    if live.through is None:
        return _labels(campaign_id).count()
    closed = LabelHourCount.objects.filter(campaign_id=campaign_id, hour__lt=live.through).aggregate(n=Sum("labels"))["n"] or 0
    return closed + sum(n for n, _ in live.by_hour.values())


def rater_labels_by_hour(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, start: datetime, live: LiveHours | None = None) -> Counter:
    """Return the campaign's raters' labels per UTC hour (keyed by its start) from ``start`` on; a partial first hour counts from ``start``.

    ``live``, when the caller read it, serves for the labels since the closed instant.
    """
    through = live.through if live is not None else label_hours_closed_through()
    whole = hour_floor(start) if hour_floor(start) == start else hour_floor(start) + timedelta(hours=1)
    counts: Counter = Counter()
    windows = [(start, None)]
    if through is not None and through > whole:
        counts.update(dict(LabelHourCount.objects.filter(campaign_id=campaign_id, hour__gte=whole, hour__lt=through)
                           .values_list("hour", "rater_labels")))
        windows = [(start, whole), (through, None)]  # the partial first hour, and the hours not closed yet
    for window_start, window_end in windows:
        if window_end is None or window_end > window_start:
            by_hour = _live_from(live, window_start) if window_end is None else None
            if by_hour is None:
                by_hour = labels_in_window_by_hour(campaign_id=campaign_id, start=window_start, end=window_end)
            counts.update({hour: raters for hour, (_, raters) in by_hour.items() if raters})
    return counts


def _live_from(live: LiveHours | None, start: datetime) -> dict | None:
    """The labels per hour from ``start`` on, from ``live`` where it holds them all: from the closed instant, or from a whole
    UTC hour at or after it (labels today just after midnight, before the close has passed it); else None."""
    if live is None or live.through is None or start < live.through:
        return None
    if start == live.through:
        return live.by_hour
    return {hour: counts for hour, counts in live.by_hour.items() if hour >= start} if hour_floor(start) == start else None


def labels_per_minute(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, minutes: int = 5, live: LiveHours | None = None) -> float:
    """Return the raters' mean labels per minute since the start of the minute ``minutes`` ago.

    The closed minutes are read from their rows (``LabelMinuteCount``) and the labels after the closed instant from ``live``
    (read here when the caller did not): at 300 labels a second, five minutes are 90,000 labels, and counting them one
    by one took a dashboard push 50-85 ms. Where the closes lag behind the window (no worker), the window is counted.
    """
    now = timezone.now()
    since = minute_floor(now - timedelta(minutes=minutes))
    through = live.through if live is not None else label_hours_closed_through()
    if through is None or through <= since:
        n = sum(raters for _, raters in labels_in_window_by_hour(campaign_id=campaign_id, start=since).values())
    else:
        n = LabelMinuteCount.objects.filter(campaign_id=campaign_id, minute__gte=since, minute__lt=through).aggregate(
            n=Sum("rater_labels"))["n"] or 0
        after = live.by_hour if live is not None else labels_in_window_by_hour(campaign_id=campaign_id, start=through)
        n += sum(raters for _, raters in after.values())
    return round(n / ((now - since).total_seconds() / 60), 2)


def active_rater_count(*, minutes: int = 10) -> int:
    """Return how many raters labelled or held a lease in the last ``minutes``."""
    since = timezone.now() - timedelta(minutes=minutes)
    # two range reads of the window (labels by created_at, leases by leased_at), never a join of every user with their history
    # order_by(): the models' default ordering would make DISTINCT keep every row
    labelled = PreferenceLabel.objects.filter(created_at__gte=since, rater__isnull=False).order_by().values_list("rater_id", flat=True).distinct()
    leased = Assignment.objects.filter(leased_at__gte=since).order_by().values_list("rater_id", flat=True).distinct()
    return len(set(labelled) | set(leased))
