"""Quality figures as sums over label rows: a ``QualityTally`` of rows adds up over disjoint sets of comparisons, so the stored
tallies (``services.quality_tally``) and the live part (``selectors.quality``) are the same computation. No database here."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from feedback_app.stats.agreement import agreeing_pairs, coincidences, cohen_kappa_of_table, consensus_agreement, ordinal_value, pair_tables

MIN_SHARED_FOR_KAPPA = 5  # comparisons two raters share before their κ is shown


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
