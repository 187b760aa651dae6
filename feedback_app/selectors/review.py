"""The review queue and its marks: comparisons flagged by a rater or disputed among raters, what an admin reads to decide, and the
gold pairs an agreed history offers."""

from __future__ import annotations

from collections import defaultdict

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PreferenceLabel


def _comparisons(campaign_id: int):
    return Comparison.objects.filter(prompt__campaign_id=campaign_id)


def review_queue(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, limit: int = 100) -> dict[str, list]:
    """Return the newest comparisons waiting for an admin: flagged by a rater, or disputed among raters (``Comparison.flagged``, ``.disputed``)."""
    pending = _comparisons(campaign_id).filter(reviewed_at__isnull=True).select_related("prompt", "response_a", "response_b")
    flagged = list(pending.filter(flagged=True).order_by("-id")[:limit])
    disputed = list(pending.filter(disputed=True).order_by("-id")[:limit])
    votes = defaultdict(list)
    for cid, winner in PreferenceLabel.objects.filter(comparison_id__in=[c.pk for c in disputed], rater__isnull=False).values_list("comparison_id", "winner"):
        votes[cid].append(winner)
    return {"flagged": flagged, "disputed": disputed, "votes": dict(votes)}


def review_marks(winners: list[str], *, flagged: bool) -> dict[str, bool]:
    """Return a comparison's ``flagged`` and ``disputed`` marks from its raters' answers and whether any label carries a flag."""
    disputed = len(winners) >= 2 and max(winners.count(w) for w in set(winners)) / len(winners) < 2 / 3
    return {"flagged": flagged, "disputed": disputed}


def gold_candidates_count(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, limit: int = 100, scan: int = 10_000) -> int:
    """Return how many complete comparisons with 2+ labels that all agree on A or B the promote button would make gold: at most
    ``limit`` (it promotes the newest ``limit``), looking at the newest ``scan`` complete comparisons, a page at a time."""
    complete = _comparisons(campaign_id).filter(is_gold=False, status=Comparison.Status.COMPLETE, label_count__gte=2, excluded=False).order_by("-id")
    found, seen, before = 0, 0, None
    while found < limit and seen < scan:
        ids = list((complete if before is None else complete.filter(pk__lt=before)).values_list("pk", flat=True)[:500])
        if not ids:
            break
        winners = defaultdict(set)
        for cid, winner in PreferenceLabel.objects.filter(comparison_id__in=ids).values_list("comparison_id", "winner"):
            winners[cid].add(winner)
        found += sum(1 for cid in ids if len(winners[cid]) == 1 and winners[cid] <= {"a", "b"})
        seen, before = seen + len(ids), ids[-1]
    return min(found, limit)


def labels_by_comparison(*, comparison_ids: list[int]) -> dict[int, list[PreferenceLabel]]:
    """Return the labels of each comparison (with rater and profile), oldest first; comparisons without labels are left out."""
    labels: dict[int, list[PreferenceLabel]] = {}
    for label in PreferenceLabel.objects.filter(comparison_id__in=comparison_ids).select_related("rater__profile").order_by("id"):
        labels.setdefault(label.comparison_id, []).append(label)
    return labels


def comparison_get(*, comparison_id: int, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> Comparison | None:
    """Return the comparison ``comparison_id``, or None if there is none."""
    return _comparisons(campaign_id).filter(pk=comparison_id).first()
