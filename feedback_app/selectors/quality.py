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
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta, timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q
from django.db.models.functions import Length
from django.utils import timezone

from feedback_app.models import (
    DEFAULT_CAMPAIGN_ID,
    AgreementTally,
    Assignment,
    CampaignMember,
    Comparison,
    PreferenceLabel,
    QualityTallied,
    RaterPairTally,
    RaterTally,
)
from feedback_app.selectors.campaigns import campaign_get, comparisons_in_campaign
from feedback_app.selectors.label_tally import MARK_ID, day_start, labels_in_window
from feedback_app.stats.agreement import (
    agreeing_pairs,
    alpha_of_coincidences,
    coincidences,
    cohen_kappa_of_table,
    consensus_agreement,
    kappas_of_tables,
    ordinal_value,
    pair_tables,
)
from feedback_app.stats.ratings import trust_score

MIN_LABELS_FOR_WARNINGS = 20
MIN_SHARED_FOR_KAPPA = 5  # comparisons two raters share before their κ is shown
KAPPA_PAIRS_SHOWN = 50  # the pairs listed, those sharing the most comparisons


def _labels(campaign_id: int):
    """The labels of one campaign: every quality figure is per campaign."""
    return PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id)


def _comparisons(campaign_id: int):
    return Comparison.objects.filter(prompt__campaign_id=campaign_id)


def rater_label_rows(*, campaign_id: int, comparison_ids=None, tallied_before=None) -> list[dict]:
    """Return the campaign's rater labels as rows for ``tally_of_rows``; with ``tallied_before``, only those the quality tallies
    leave out: of the comparisons not completed before it, and the gold pairs' labels made since (gold pairs stay open)."""
    labels = _labels(campaign_id).filter(rater__isnull=False)
    if tallied_before is not None:
        # the comparisons first (the backlog and the last hour's, through comparison_completed_at), then their labels
        live = comparisons_in_campaign(Comparison.objects.filter(Q(completed_at__isnull=True) | Q(completed_at__gte=tallied_before), is_gold=False),
                                       campaign_id=campaign_id)
        return (_label_rows(PreferenceLabel.objects.filter(rater__isnull=False, comparison_id__in=live.values("pk")))
                + _label_rows(labels.filter(comparison__is_gold=True, created_at__gte=tallied_before)))
    if comparison_ids is not None:
        labels = labels.filter(comparison_id__in=comparison_ids)
    return _label_rows(labels)


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


def overlap_units(rows: list[dict], *, ordinal: bool = False) -> dict:
    """Return {comparison: {rater: category or ordinal value}} for comparisons with 2+ rater labels.

    Gold pairs are left out: a rater's label there is measured against the known answer, and each
    is shown to every rater, so it would never stop changing.
    """
    units: dict = defaultdict(dict)
    for row in rows:
        if row.get("comparison__is_gold"):
            continue
        units[row["comparison_id"]][row["rater_id"]] = (
            ordinal_value(winner=row["winner"], strength=row["strength"]) if ordinal else row["winner"]
        )
    return {unit: raters for unit, raters in units.items() if len(raters) >= 2}


# A rater's counts in a tally; every quality figure of theirs is a ratio of two of them (see rater_quality).
RATER_COUNTS = ("n_labels", "gold_correct", "gold_n", "consensus_agree", "consensus_n", "rm_agree", "rm_n", "left", "shown", "longer", "sized")


@dataclass
class QualityTally:
    """Every quality figure of a campaign as sums that add up over disjoint sets of comparisons.

    Per rater: the ``RATER_COUNTS`` and their times on task (a multiset); over the comparisons with
    overlap: agreeing and all rater pairs, the coincidence matrices of Krippendorff's α (winners and
    ordinal values) and each pair of raters' confusion table. ``services.quality_tally`` stores the
    tally of the comparisons completed before ``QualityTallied.through``; ``quality_tally`` adds
    the rest, read live.
    """

    raters: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    times: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    n_units: int = 0
    agreeing_pairs: int = 0
    pairs: int = 0
    nominal: Counter = field(default_factory=Counter)
    ordinal: Counter = field(default_factory=Counter)
    rater_pairs: dict[tuple[int, int], Counter] = field(default_factory=lambda: defaultdict(Counter))
    # Pairs of raters summed, not listed in ``rater_pairs`` (the stored ones no live comparison touches): how many share
    # MIN_SHARED_FOR_KAPPA comparisons, the sum of their κ and how many have one, and the most shared of them, listed.
    pairs_shared: int = 0
    kappa_sum: float = 0.0
    kappa_n: int = 0
    top_pairs: list = field(default_factory=list)

    def add(self, other: "QualityTally") -> "QualityTally":
        for mine, theirs in ((self.raters, other.raters), (self.times, other.times), (self.rater_pairs, other.rater_pairs)):
            for key, counts in theirs.items():
                mine[key].update(counts)
        self.n_units += other.n_units
        self.agreeing_pairs += other.agreeing_pairs
        self.pairs += other.pairs
        self.nominal.update(other.nominal)
        self.ordinal.update(other.ordinal)
        self.pairs_shared += other.pairs_shared
        self.kappa_sum += other.kappa_sum
        self.kappa_n += other.kappa_n
        self.top_pairs += other.top_pairs
        return self


def pair_kappa(table: Counter) -> tuple[bool, float | None]:
    """Return whether a pair's table counts toward the mean κ (MIN_SHARED_FOR_KAPPA shared comparisons) and its κ."""
    if sum(table.values()) < MIN_SHARED_FOR_KAPPA:
        return False, None
    return True, cohen_kappa_of_table(table)


def rm_counts(row: dict, prob_a_wins: float | None) -> Counter:
    """Return a label's reward-model counts (``rm_agree``, ``rm_n``) against the model's P(A wins) of its comparison."""
    if row["winner"] not in ("a", "b") or prob_a_wins is None or prob_a_wins == 0.5:
        return Counter()
    return Counter(rm_n=1, rm_agree=int((row["winner"] == "a") == (prob_a_wins > 0.5)))


def time_bucket(ms: int) -> int:
    """Return the stored time on task of a tallied label: the lower edge of its bucket, each 5% wider than the one before.

    A rater's stored times are then a few dozen buckets whatever their number of labels, and
    the median read from them is within 5% below the true one.
    """
    if ms < 100:
        return ms // 10 * 10
    k = math.floor(math.log(ms / 100, 1.05))
    while round(100 * 1.05 ** (k + 1)) <= ms:  # the edges are whole milliseconds: an edge is its own bucket
        k += 1
    while round(100 * 1.05 ** k) > ms:
        k -= 1
    return round(100 * 1.05 ** k)


def tally_of_rows(rows: list[dict], *, bucket_times: bool = False) -> QualityTally:
    """Return the tally of rater label rows (``rater_label_rows``); the agreement figures count comparisons with 2+ of them."""
    tally = QualityTally()
    for row in rows:
        counts = tally.raters[row["rater_id"]]
        counts["n_labels"] += 1
        if row["comparison__is_gold"] and row["comparison__gold_winner"]:
            counts["gold_n"] += 1
            counts["gold_correct"] += row["winner"] == row["comparison__gold_winner"]
        if row["winner"] in ("a", "b"):
            if row["a_on_left"] is not None:
                counts["shown"] += 1
                counts["left"] += (row["winner"] == "a") == row["a_on_left"]
            if row["len_a"] != row["len_b"]:
                counts["sized"] += 1
                counts["longer"] += (row["winner"] == "a") == (row["len_a"] > row["len_b"])
        counts.update(rm_counts(row, row["comparison__rm_prob_a_wins"]))
        if row["time_on_task_ms"] is not None:
            tally.times[row["rater_id"]][time_bucket(row["time_on_task_ms"]) if bucket_times else row["time_on_task_ms"]] += 1
    units = overlap_units(rows)
    for rater_id, agree in consensus_agreement(units).items():
        tally.raters[rater_id].update(consensus_agree=agree["agree"], consensus_n=agree["n"])
    for pair, table in pair_tables(units).items():
        tally.rater_pairs[pair].update(table)
    return tally.add(agreement_of_rows(rows))


def agreement_of_rows(rows: list[dict]) -> QualityTally:
    """Return the agreement sums alone (units, pairs, coincidences) of rows with a comparison, a rater, a winner and a strength."""
    units = overlap_units(rows)
    return QualityTally(n_units=len(units), agreeing_pairs=(counted := agreeing_pairs(units))[0], pairs=counted[1],
                        nominal=coincidences(units), ordinal=coincidences(overlap_units(rows, ordinal=True)))


def quality_tally(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, raters: bool = True, pairs: bool = True) -> QualityTally:
    """Return the campaign's tally: the stored one of its comparisons completed before ``QualityTallied.through``, plus the rest read live.

    The live part is the labels of open comparisons (the backlog) and of those completed since the
    last close (``services.quality_tally``, every few minutes): it follows the backlog and the
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
    return round(sum(by_rater for _, by_rater in labels_in_window(campaign_id=campaign_id, start=since)) / minutes, 2)


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
