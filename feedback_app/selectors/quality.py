"""How trustworthy the labels are: gold accuracy, agreement, biases, trust.

Per rater:
- gold accuracy: labels on gold pairs that give the expected answer;
- consensus agreement: labels on comparisons with overlap that match the majority of the
  *other* raters (leave-one-out; no majority among the others, no verdict);
- reward-model agreement: decisive labels (A or B) whose winner the active reward model also
  prefers (once a worker has scored the comparison);
- position bias: the share of decisive labels that picked the response shown on the left;
- length bias: the share of decisive labels, among pairs of different lengths, that picked the
  longer response;
- median time on task;
- trust: ``feedback_app.stats.ratings.trust_score`` of gold and consensus evidence.

Rows that look wrong are flagged with the reason (see ``_warnings``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta, timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.db.models.functions import Length
from django.utils import timezone

from feedback_app.models import DEFAULT_CAMPAIGN_ID, AgreementDay, Assignment, CampaignMember, Comparison, PreferenceLabel
from feedback_app.selectors.campaigns import campaign_get
from feedback_app.selectors.label_tally import day_start, label_days_closed_through
from feedback_app.stats.agreement import consensus_agreement, krippendorff_alpha, ordinal_value, pairwise_kappas, percent_agreement
from feedback_app.stats.ratings import trust_score

MIN_LABELS_FOR_WARNINGS = 20


def _labels(campaign_id: int):
    """The labels of one campaign: every quality figure is per campaign."""
    return PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id)


def _comparisons(campaign_id: int):
    return Comparison.objects.filter(prompt__campaign_id=campaign_id)


def _rater_label_rows(*, campaign_id: int, since=None, comparison_ids=None) -> list[dict]:
    labels = _labels(campaign_id).filter(rater__isnull=False)
    if since is not None:
        labels = labels.filter(created_at__gte=since)
    if comparison_ids is not None:
        labels = labels.filter(comparison_id__in=comparison_ids)
    return list(
        labels.annotate(len_a=Length("comparison__response_a__text"), len_b=Length("comparison__response_b__text")).values(
            "comparison_id", "rater_id", "winner", "strength", "a_on_left", "time_on_task_ms", "created_at", "len_a", "len_b",
            "comparison__is_gold", "comparison__gold_winner", "comparison__rm_prob_a_wins", "comparison__label_count",
        )
    )


def overlap_units(rows: list[dict], *, ordinal: bool = False) -> dict:
    """Return {comparison: {rater: category or ordinal value}} for comparisons with 2+ rater labels."""
    units: dict = defaultdict(dict)
    for row in rows:
        units[row["comparison_id"]][row["rater_id"]] = (
            ordinal_value(winner=row["winner"], strength=row["strength"]) if ordinal else row["winner"]
        )
    return {unit: raters for unit, raters in units.items() if len(raters) >= 2}


def rater_quality(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, rows: list[dict] | None = None) -> dict[int, dict]:
    """Return the quality figures of every rater who labelled, by user id."""
    rows = _rater_label_rows(campaign_id=campaign_id) if rows is None else rows
    consensus = consensus_agreement(overlap_units(rows))
    per_rater: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        per_rater[row["rater_id"]].append(row)
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=per_rater).select_related("profile")}
    qualification = dict(CampaignMember.objects.filter(campaign_id=campaign_id, user_id__in=per_rater).values_list("user_id", "qualification"))
    result = {}
    for rater_id, labels in per_rater.items():
        decisive = [r for r in labels if r["winner"] in ("a", "b")]
        gold = [r for r in labels if r["comparison__is_gold"] and r["comparison__gold_winner"]]
        gold_correct = sum(r["winner"] == r["comparison__gold_winner"] for r in gold)
        shown = [r for r in decisive if r["a_on_left"] is not None]
        left = sum((r["winner"] == "a") == r["a_on_left"] for r in shown)
        sized = [r for r in decisive if r["len_a"] != r["len_b"]]
        longer = sum((r["winner"] == "a") == (r["len_a"] > r["len_b"]) for r in sized)
        judged = [r for r in decisive if r["comparison__rm_prob_a_wins"] is not None and r["comparison__rm_prob_a_wins"] != 0.5]
        rm_agree = sum((r["winner"] == "a") == (r["comparison__rm_prob_a_wins"] > 0.5) for r in judged)
        times = [r["time_on_task_ms"] for r in labels if r["time_on_task_ms"] is not None]
        agree = consensus.get(rater_id, {"agree": 0, "n": 0})
        user = users.get(rater_id)
        figures = {
            "rater_id": rater_id,
            "username": user.username if user else f"user {rater_id}",
            "pseudonym": getattr(getattr(user, "profile", None), "pseudonym", f"u-{rater_id}"),
            "qualification": qualification.get(rater_id, ""),
            "n_labels": len(labels),
            "gold_correct": gold_correct,
            "gold_n": len(gold),
            "gold_accuracy": _rate(gold_correct, len(gold)),
            "consensus_agree": agree["agree"],
            "consensus_n": agree["n"],
            "consensus_rate": _rate(agree["agree"], agree["n"]),
            "rm_agree": rm_agree,
            "rm_n": len(judged),
            "rm_rate": _rate(rm_agree, len(judged)),
            "left_share": _rate(left, len(shown)),
            "longer_share": _rate(longer, len(sized)),
            "median_time_ms": int(statistics.median(times)) if times else None,
            "trust": round(trust_score(gold_correct=gold_correct, gold_n=len(gold), consensus_agree=agree["agree"], consensus_n=agree["n"]), 4),
        }
        figures["warnings"] = _warnings(figures)
        result[rater_id] = figures
    return result


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def _warnings(f: dict) -> list[str]:
    """Say why a rater's row looks wrong; quiet until they have MIN_LABELS_FOR_WARNINGS labels."""
    if f["n_labels"] < MIN_LABELS_FOR_WARNINGS:
        return []
    warnings = []
    if f["left_share"] is not None and not 0.3 <= f["left_share"] <= 0.7:
        warnings.append(f"picks the {'left' if f['left_share'] > 0.5 else 'right'} side {max(f['left_share'], 1 - f['left_share']):.0%} of the time")
    if f["longer_share"] is not None and f["longer_share"] > 0.85:
        warnings.append(f"picks the longer reply {f['longer_share']:.0%} of the time")
    if f["median_time_ms"] is not None and f["median_time_ms"] < 3000:
        warnings.append(f"median time on task {f['median_time_ms'] / 1000:.1f} s")
    if f["gold_accuracy"] is not None and f["gold_n"] >= 5 and f["gold_accuracy"] < 0.6:
        warnings.append(f"gold accuracy {f['gold_accuracy']:.0%}")
    if f["consensus_rate"] is not None and f["consensus_n"] >= 10 and f["consensus_rate"] < 0.5:
        warnings.append(f"agrees with the others {f['consensus_rate']:.0%} of the time")
    return warnings


def agreement_summary(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, rows: list[dict] | None = None) -> dict:
    """Return percent agreement, Krippendorff's α (ordinal, by strength) and Cohen's κ of rater pairs."""
    rows = _rater_label_rows(campaign_id=campaign_id) if rows is None else rows
    units = overlap_units(rows)
    kappas = pairwise_kappas(units)
    return {
        "n_units": len(units),
        "percent_agreement": percent_agreement(units),
        "alpha_ordinal": krippendorff_alpha(overlap_units(rows, ordinal=True), level="ordinal"),
        "alpha_nominal": krippendorff_alpha(units, level="nominal"),
        "mean_kappa": round(statistics.mean(k["kappa"] for k in kappas if k["kappa"] is not None), 4)
        if any(k["kappa"] is not None for k in kappas) else None,
        "kappas": kappas,
    }


def agreement_of_comparisons_completed(*, campaign_id: int, start: datetime, end: datetime) -> dict | None:
    """Return percent agreement and ordinal α over the campaign's comparisons with overlap completed in [start, end); None without any."""
    completed = _comparisons(campaign_id).filter(completed_at__gte=start, completed_at__lt=end, label_count__gte=2).values_list("pk", flat=True)
    rows = _rater_label_rows(campaign_id=campaign_id, comparison_ids=completed)
    if not rows:
        return None
    return {"n_units": len(overlap_units(rows)), "percent_agreement": percent_agreement(overlap_units(rows)),
            "alpha_ordinal": krippendorff_alpha(overlap_units(rows, ordinal=True), level="ordinal")}


def agreement_over_time(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, days: int = 30) -> list[dict]:
    """Return per UTC day: percent agreement and ordinal α over comparisons with overlap completed that day.

    Closed days are read from ``AgreementDay`` (``services.label_tally`` writes them as each day
    closes); the days since are computed from their labels.
    """
    start = (timezone.now() - timedelta(days=days)).astimezone(dt_timezone.utc)
    through = label_days_closed_through()
    stored = AgreementDay.objects.filter(campaign_id=campaign_id, day__gte=start.date(), day__lte=through) if through else AgreementDay.objects.none()
    result = {d.day: {"n_units": d.n_units, "percent_agreement": d.percent_agreement, "alpha_ordinal": d.alpha_ordinal} for d in stored}
    day = max(start.date(), through + timedelta(days=1)) if through else start.date()
    today = timezone.now().astimezone(dt_timezone.utc).date()
    while day <= today:
        figures = agreement_of_comparisons_completed(campaign_id=campaign_id, start=max(start, day_start(day)), end=day_start(day + timedelta(days=1)))
        if figures is not None:
            result[day] = figures
        day += timedelta(days=1)
    return [{"day": day.isoformat(), **figures} for day, figures in sorted(result.items())]


def rater_trust(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict[int, float]:
    """Return every rater's trust score, reading only gold counts and labels on comparisons with overlap.

    The same figure as ``rater_quality()[id]["trust"]``, without loading every label (exports
    and training runs call this).
    """
    gold = defaultdict(lambda: [0, 0])
    for rater_id, winner, expected in _labels(campaign_id).filter(rater__isnull=False, comparison__is_gold=True).exclude(
            comparison__gold_winner="").values_list("rater_id", "winner", "comparison__gold_winner"):
        gold[rater_id][0] += winner == expected
        gold[rater_id][1] += 1
    overlap = _labels(campaign_id).filter(rater__isnull=False, comparison__label_count__gte=2).values("comparison_id", "rater_id", "winner", "strength")
    consensus = consensus_agreement(overlap_units(list(overlap)))
    raters = set(gold) | set(consensus) | set(_labels(campaign_id).filter(rater__isnull=False).order_by().values_list("rater_id", flat=True).distinct())
    return {
        r: round(trust_score(gold_correct=gold[r][0], gold_n=gold[r][1], consensus_agree=consensus.get(r, {}).get("agree", 0),
                             consensus_n=consensus.get(r, {}).get("n", 0)), 4)
        for r in raters
    }


def rater_weights(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict[int, float]:
    """Return each rater's weight in training the campaign's models, per its rules (1.0 for everyone not listed).

    With trust weighting on, a label weighs its rater's trust in the campaign; raters below
    ``min_trust`` weigh 0 (their labels are left out).
    """
    config = campaign_get(campaign_id=campaign_id)
    if not config.weight_by_trust and config.min_trust <= 0:
        return {}
    weights = {}
    for rater_id, trust in rater_trust(campaign_id=campaign_id).items():
        weight = trust if config.weight_by_trust else 1.0
        weights[rater_id] = 0.0 if trust < config.min_trust else weight
    return weights


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


def labels_per_minute(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, minutes: int = 5) -> float:
    """Return the mean labels per minute over the last ``minutes``."""
    since = timezone.now() - timedelta(minutes=minutes)
    return round(_labels(campaign_id).filter(created_at__gte=since, rater__isnull=False).count() / minutes, 2)


def active_rater_count(*, minutes: int = 10) -> int:
    """Return how many raters labelled or held a lease in the last ``minutes``."""
    since = timezone.now() - timedelta(minutes=minutes)
    # two range reads of the window (labels by created_at, leases by leased_at), never a join of every user with their history
    # order_by(): the models' default ordering would make DISTINCT keep every row
    labelled = PreferenceLabel.objects.filter(created_at__gte=since, rater__isnull=False).order_by().values_list("rater_id", flat=True).distinct()
    leased = Assignment.objects.filter(leased_at__gte=since).order_by().values_list("rater_id", flat=True).distinct()
    return len(set(labelled) | set(leased))


def comparison_agreement(*, comparison_ids: list[int]) -> dict[int, dict]:
    """Return, per comparison, its rater-label count and the share agreeing with the majority."""
    votes = defaultdict(list)
    for cid, winner in PreferenceLabel.objects.filter(comparison_id__in=comparison_ids, rater__isnull=False).values_list("comparison_id", "winner"):
        votes[cid].append(winner)
    return {cid: {"n": len(ws), "agreement": round(max(ws.count(w) for w in set(ws)) / len(ws), 4)} for cid, ws in votes.items()}


def gold_candidates_count(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> int:
    """Return how many complete comparisons have 2+ labels that all agree on A or B."""
    return (
        _comparisons(campaign_id).filter(is_gold=False, status=Comparison.Status.COMPLETE, label_count__gte=2)
        .annotate(winners=Count("labels__winner", distinct=True))
        .filter(winners=1)
        .exclude(labels__winner__in=["tie", "both_bad"])
        .count()
    )


def labels_by_comparison(*, comparison_ids: list[int]) -> dict[int, list[PreferenceLabel]]:
    """Return the labels of each comparison (with rater and profile), oldest first; comparisons without labels are left out."""
    labels: dict[int, list[PreferenceLabel]] = {}
    for label in PreferenceLabel.objects.filter(comparison_id__in=comparison_ids).select_related("rater__profile").order_by("id"):
        labels.setdefault(label.comparison_id, []).append(label)
    return labels


def comparison_get(*, comparison_id: int, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> Comparison | None:
    """Return the comparison ``comparison_id``, or None if there is none."""
    return _comparisons(campaign_id).filter(pk=comparison_id).first()
