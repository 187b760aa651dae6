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

import json
from collections import Counter, defaultdict
from datetime import timedelta, timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q
from django.db.models.functions import Length
from django.utils import timezone

from feedback_app.models import (
    DEFAULT_CAMPAIGN_ID,
    AgreementTally,
    CampaignMember,
    Comparison,
    PreferenceLabel,
    QualityTallied,
    RaterPairTally,
    RaterTally,
)
from feedback_app.selectors.campaigns import campaign_get, comparisons_in_campaign
from feedback_app.selectors.label_tally import MARK_ID, day_start
from feedback_app.selectors.quality_rows import MIN_SHARED_FOR_KAPPA, QualityTally, agreement_of_rows, tally_of_rows
from feedback_app.stats.agreement import alpha_of_coincidences, kappas_of_tables
from feedback_app.stats.ratings import trust_score

MIN_LABELS_FOR_WARNINGS = 20
KAPPA_PAIRS_SHOWN = 50  # the pairs listed, those sharing the most comparisons


def _labels(campaign_id: int):
    """The labels of one campaign: every quality figure is per campaign."""
    return PreferenceLabel.objects.filter(campaign_id=campaign_id)


def rater_label_rows(*, campaign_id: int, comparison_ids=None, tallied_before=None) -> list[dict]:
    """Return the campaign's rater labels as rows for ``tally_of_rows``; with ``comparison_ids`` (the campaign's), those of these
    comparisons; with ``tallied_before``, only those the quality tallies leave out: of the comparisons not completed before it,
    and the gold pairs' labels made since (gold pairs stay open)."""
    if comparison_ids is not None:
        # read from the ids, not through the campaign's prompts: given a long list, SQLite walked every prompt of the campaign and
        # looked each up in it (45 s for 2,000 ids among 186,000 comparisons, the write lock held all along by a close)
        return _label_rows(PreferenceLabel.objects.filter(rater__isnull=False, comparison_id__in=comparison_ids))
    labels = _labels(campaign_id).filter(rater__isnull=False)
    if tallied_before is not None:
        # the comparisons first (the backlog and the last minute's, through comparison_completed_at), then their labels
        live = untallied_comparisons(campaign_id=campaign_id, through=tallied_before)
        return (_label_rows(PreferenceLabel.objects.filter(rater__isnull=False, comparison_id__in=live.values("pk")))
                + _label_rows(labels.filter(comparison__is_gold=True, created_at__gte=tallied_before)))
    return _label_rows(labels)


def untallied_comparisons(*, campaign_id: int, through):
    """Return the campaign's comparisons the quality tallies (and the kept training data) leave out at ``through``: open ones (the
    backlog) and those completed since. Gold pairs apart: their labels are tallied as they are made."""
    return comparisons_in_campaign(Comparison.objects.filter(Q(completed_at__isnull=True) | Q(completed_at__gte=through), is_gold=False),
                                   campaign_id=campaign_id)


def gold_label_rows(*, campaign_id: int, start, end) -> list[dict]:
    """Return the rater labels of the campaign's gold pairs made in [start, end) (the tallies count them as they are made)."""
    return _label_rows(_labels(campaign_id).filter(rater__isnull=False, comparison__is_gold=True, created_at__gte=start, created_at__lt=end))


def _label_rows(labels) -> list[dict]:
    return list(
        labels.annotate(len_a=Length("comparison__response_a__text"), len_b=Length("comparison__response_b__text")).values(
            "comparison_id", "rater_id", "winner", "strength", "a_on_left", "time_on_task_ms", "created_at", "len_a", "len_b",
            "comparison__is_gold", "comparison__gold_winner", "comparison__rm_prob_a_wins", "comparison__label_count",
        )
    )


def quality_tally(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, raters: bool = True, pairs: bool = True) -> QualityTally:
    """Return the campaign's tally: the stored one of its comparisons completed before ``QualityTallied.through``, plus the rest read live.

    The live part is the labels of open comparisons (the backlog) and of those completed since the
    last close (``services.quality_tally``, every minute): it follows the backlog and the
    rate, not the history. Only the pairs of raters with enough shared comparisons for κ, or with a
    live one, are read. Without ``raters`` the stored per-rater counts are not read (their figures
    are then the live part's only), without ``pairs`` neither are the rater pairs' tables (κ).
    """
    through = QualityTallied.objects.filter(pk=MARK_ID).values_list("through", flat=True).first()
    live = rater_label_rows(campaign_id=campaign_id, tallied_before=through)
    tally = tally_of_rows(live)
    if through is None:
        return tally
    stored = QualityTally()
    for rater_id, counts, times in RaterTally.objects.filter(campaign_id=campaign_id).values_list("rater_id", "counts", "times") if raters else ():
        stored.raters[rater_id].update(counts)
        stored.times[rater_id].update({int(ms): n for ms, n in times.items()})
    agreement = AgreementTally.objects.filter(campaign_id=campaign_id, day__isnull=True).first()
    if agreement is not None:
        stored.add(_stored_agreement(agreement))
    if pairs:
        _stored_pairs(stored, campaign_id=campaign_id, live_pairs=set(tally.rater_pairs))
    return stored.add(tally)


def _stored_pairs(stored: QualityTally, *, campaign_id: int, live_pairs: set[tuple[int, int]]) -> None:
    """Add to ``stored`` the tables of the rater pairs a live comparison touches (taken out of the sums, to be merged with the live
    ones) and the most shared of the others."""
    pairs = RaterPairTally.objects.filter(campaign_id=campaign_id)
    # the stored tables of the pairs a live comparison touches: they leave the sums and are listed, merged with the live ones
    for _, rater_1, rater_2, n, kappa, table in rater_pairs_stored(campaign_id=campaign_id, pairs=live_pairs):
        stored.rater_pairs[(rater_1, rater_2)].update(stored_matrix(table))
        if n >= MIN_SHARED_FOR_KAPPA:
            stored.pairs_shared -= 1
            if kappa is not None:
                stored.kappa_sum -= kappa
                stored.kappa_n -= 1
    # the most shared of the other pairs, a page at a time until enough are found (live pairs are listed from ``rater_pairs``)
    ranked = pairs.filter(n__gte=MIN_SHARED_FOR_KAPPA).order_by("-n", "rater_1", "rater_2").values_list("rater_1", "rater_2", "table")
    start = 0
    while len(stored.top_pairs) < KAPPA_PAIRS_SHOWN:
        page = list(ranked[start:start + 2 * KAPPA_PAIRS_SHOWN])
        stored.top_pairs += [((r1, r2), stored_matrix(table)) for r1, r2, table in page if (r1, r2) not in live_pairs]
        if len(page) < 2 * KAPPA_PAIRS_SHOWN:
            break
        start += len(page)
    stored.top_pairs = stored.top_pairs[:KAPPA_PAIRS_SHOWN]


def rater_pairs_stored(*, campaign_id: int, pairs: set[tuple[int, int]], chunk: int = 2000) -> list[tuple]:
    """Return ``(id, rater_1, rater_2, n, kappa, table)`` of the stored pairs among ``pairs``: a join with the list, so
    the read follows the pairs asked for, not every pair of their raters."""
    table = RaterPairTally._meta.db_table
    found, wanted = [], sorted(pairs)
    with connection.cursor() as cursor:
        for i in range(0, len(wanted), chunk):
            part = wanted[i:i + chunk]
            if connection.vendor == "postgresql":  # two array parameters, not thousands of placeholders
                pairs_sql, params = "unnest(%s::int[], %s::int[]) AS v(column1, column2)", [[p[0] for p in part], [p[1] for p in part]]
            else:  # a VALUES list's columns are column1, column2
                pairs_sql, params = f'(VALUES {", ".join(["(%s, %s)"] * len(part))}) v', [x for pair in part for x in pair]
            cursor.execute(f'SELECT t.id, t.rater_1, t.rater_2, t.n, t.kappa, t."table" FROM {table} t JOIN {pairs_sql}'
                           " ON t.rater_1 = v.column1 AND t.rater_2 = v.column2 WHERE t.campaign_id = %s", params + [campaign_id])
            found += [(pk, r1, r2, n, kappa, json.loads(t) if isinstance(t, str) else t) for pk, r1, r2, n, kappa, t in cursor.fetchall()]
    return found


def _stored_agreement(row: AgreementTally) -> QualityTally:
    return QualityTally(n_units=row.n_units, agreeing_pairs=row.agreeing_pairs, pairs=row.pairs,
                        nominal=stored_matrix(row.nominal), ordinal=stored_matrix(row.ordinal),
                        pairs_shared=row.pairs_shared, kappa_sum=row.kappa_sum, kappa_n=row.kappa_n)


def stored_matrix(entries: list) -> Counter:
    """Return a matrix stored as ``[[row, column, value], …]`` (JSON has no tuple keys) as ``{(row, column): value}``."""
    return Counter({(row, column): value for row, column, value in entries})


def _median_of_counts(counts: Counter) -> float | None:
    """Return the median of a multiset given as ``{value: how many}`` (``statistics.median`` of its values)."""
    n = sum(counts.values())
    if not n:
        return None
    middle, seen, lower = (n - 1) // 2, 0, None
    for value in sorted(counts):
        seen += counts[value]
        if lower is None and seen > middle:
            lower = value
        if seen > n // 2:
            return (lower + value) / 2
    return None


def rater_quality(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, tally: QualityTally | None = None) -> dict[int, dict]:
    """Return the quality figures of every rater who labelled, by user id (from ``quality_tally`` unless given)."""
    tally = quality_tally(campaign_id=campaign_id) if tally is None else tally
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=tally.raters).select_related("profile")}
    qualification = dict(CampaignMember.objects.filter(campaign_id=campaign_id, user_id__in=tally.raters).values_list("user_id", "qualification"))
    result = {}
    for rater_id, c in tally.raters.items():
        median = _median_of_counts(tally.times.get(rater_id, Counter()))
        user = users.get(rater_id)
        figures = {
            "rater_id": rater_id,
            "username": user.username if user else f"user {rater_id}",
            "pseudonym": getattr(getattr(user, "profile", None), "pseudonym", f"u-{rater_id}"),
            "qualification": qualification.get(rater_id, ""),
            "n_labels": c["n_labels"],
            "gold_correct": c["gold_correct"],
            "gold_n": c["gold_n"],
            "gold_accuracy": _rate(c["gold_correct"], c["gold_n"]),
            "consensus_agree": c["consensus_agree"],
            "consensus_n": c["consensus_n"],
            "consensus_rate": _rate(c["consensus_agree"], c["consensus_n"]),
            "rm_agree": c["rm_agree"],
            "rm_n": c["rm_n"],
            "rm_rate": _rate(c["rm_agree"], c["rm_n"]),
            "left_share": _rate(c["left"], c["shown"]),
            "longer_share": _rate(c["longer"], c["sized"]),
            "median_time_ms": int(median) if median is not None else None,
            "trust": _trust(c),
        }
        figures["warnings"] = _warnings(figures)
        result[rater_id] = figures
    return result


def _trust(counts: Counter) -> float:
    return round(trust_score(gold_correct=counts["gold_correct"], gold_n=counts["gold_n"],
                             consensus_agree=counts["consensus_agree"], consensus_n=counts["consensus_n"]), 4)


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


def agreement_summary(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, tally: QualityTally | None = None) -> dict:
    """Return percent agreement, Krippendorff's α (ordinal, by strength) and Cohen's κ of rater pairs (from ``quality_tally`` unless given).

    ``mean_kappa`` is over every pair sharing ``MIN_SHARED_FOR_KAPPA`` comparisons (``n_kappa_pairs``); ``kappas`` lists the
    ``KAPPA_PAIRS_SHOWN`` of them that share the most.
    """
    tally = quality_tally(campaign_id=campaign_id, raters=False) if tally is None else tally
    unsummed = kappas_of_tables(tally.rater_pairs, min_shared=MIN_SHARED_FOR_KAPPA)
    kappas = [k["kappa"] for k in unsummed if k["kappa"] is not None]
    kappa_n = tally.kappa_n + len(kappas)
    listed = unsummed + kappas_of_tables(dict(tally.top_pairs), min_shared=MIN_SHARED_FOR_KAPPA)
    return {
        "n_units": tally.n_units,
        "n_kappa_pairs": tally.pairs_shared + len(unsummed),
        "percent_agreement": tally.agreeing_pairs / tally.pairs if tally.pairs else None,
        "alpha_ordinal": alpha_of_coincidences(tally.ordinal, level="ordinal"),
        "alpha_nominal": alpha_of_coincidences(tally.nominal, level="nominal"),
        "mean_kappa": round((tally.kappa_sum + sum(kappas)) / kappa_n, 4) if kappa_n else None,
        # the pairs that share the most comparisons (a studio of thousands of raters has thousands of pairs; the mean is over all)
        "kappas": sorted(listed, key=lambda k: (-k["n"], k["raters"]))[:KAPPA_PAIRS_SHOWN],
    }


def agreement_over_time(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, days: int = 30) -> list[dict]:
    """Return per UTC day of the last ``days``: percent agreement and ordinal α over the comparisons with overlap that completed that day.

    The tallied days are read from their ``AgreementTally`` rows; the comparisons completed since
    the last close are added live.
    """
    first = (timezone.now() - timedelta(days=days)).astimezone(dt_timezone.utc).date()
    through = QualityTallied.objects.filter(pk=MARK_ID).values_list("through", flat=True).first()
    by_day: dict = defaultdict(QualityTally)
    if through is not None:
        for row in AgreementTally.objects.filter(campaign_id=campaign_id, day__gte=first):
            by_day[row.day].add(_stored_agreement(row))
    # the comparisons first (through comparison_completed_at), then their labels
    since = comparisons_in_campaign(Comparison.objects.filter(completed_at__gte=max(through or day_start(first), day_start(first))), campaign_id=campaign_id)
    completed = PreferenceLabel.objects.filter(rater__isnull=False, comparison_id__in=since.values("pk"))
    rows: dict = defaultdict(list)
    for row in completed.values("comparison_id", "rater_id", "winner", "strength", "comparison__completed_at"):
        rows[row["comparison__completed_at"].astimezone(dt_timezone.utc).date()].append(row)
    for day, day_rows in rows.items():
        by_day[day].add(agreement_of_rows(day_rows))
    return [{"day": day.isoformat(), "n_units": t.n_units, "percent_agreement": t.agreeing_pairs / t.pairs if t.pairs else None,
             "alpha_ordinal": alpha_of_coincidences(t.ordinal, level="ordinal")}
            for day, t in sorted(by_day.items()) if t.n_units]


def people_agreement(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, tally: QualityTally | None = None) -> tuple[float | None, int]:
    """Return the campaign's raters' percent agreement with each other on comparisons with overlap, and how many there are."""
    tally = quality_tally(campaign_id=campaign_id, raters=False, pairs=False) if tally is None else tally
    return (tally.agreeing_pairs / tally.pairs if tally.pairs else None), tally.n_units


def rater_trust(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict[int, float]:
    """Return every rater's trust score (``rater_quality()[id]["trust"]``), from the tally's gold and consensus counts."""
    return {rater_id: _trust(counts) for rater_id, counts in quality_tally(campaign_id=campaign_id, pairs=False).raters.items()}


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
