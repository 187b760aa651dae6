"""Agreement between raters on pairwise labels: percent agreement, Cohen's κ, Krippendorff's α.

Units are comparisons and coders are raters. The functions that take ``units`` read them as
``{unit: {rater: value}}``; a value of None (or a float NaN) is a missing rating and is dropped.

How a label enters each statistic:

- Percent agreement, κ, pairwise κ and consensus compare nominal categories, so "tie" and
  "both_bad" are categories like "a" and "b". Pass the winner as the value to ask "did they pick
  the same side", or (winner, strength) to ask "did they give the same label".
- Ordinal (or interval) α compares ``ordinal_value``: "a" is +strength, "b" is −strength, "tie"
  is 0 and "both_bad" is missing, since "both are bad" says nothing about which of the two is
  better.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

Units = Mapping[Hashable, Mapping[Hashable, Hashable]]

STRENGTHS = (1, 2, 3)
LEVELS = ("nominal", "ordinal", "interval")


def ordinal_value(*, winner: str, strength: int) -> int | None:
    """Return the label on the scale −3..+3 (positive favours A), or None for both_bad.

    "a" gives +strength and "b" gives −strength; "tie" gives 0 whatever the strength; "both_bad"
    is missing because it says nothing about the order of the two responses.
    """
    if winner == "tie":
        return 0
    if winner == "both_bad":
        return None
    if winner not in ("a", "b"):
        raise ValueError(f"winner must be 'a', 'b', 'tie' or 'both_bad', not {winner!r}")
    if strength not in STRENGTHS:
        raise ValueError(f"strength must be 1, 2 or 3, not {strength!r}")
    return strength if winner == "a" else -strength


def percent_agreement(units: Units) -> float | None:
    """Return the share of agreeing rater pairs, pooled over units; None when no unit has two ratings.

    A unit rated by m raters contributes m·(m−1)/2 pairs, so units with more raters weigh more.
    """
    agreeing, pairs = agreeing_pairs(units)
    return agreeing / pairs if pairs else None


def agreeing_pairs(units: Units) -> tuple[int, int]:
    """Return (agreeing rater pairs, rater pairs) over the units: ``percent_agreement``'s numerator and denominator, which add up over disjoint units."""
    agreeing = pairs = 0
    for ratings in units.values():
        counts = Counter(_present(ratings).values())
        rated = sum(counts.values())
        pairs += rated * (rated - 1) // 2
        agreeing += sum(count * (count - 1) // 2 for count in counts.values())
    return agreeing, pairs


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Return Cohen's κ for two raters' categories on the same units, given in the same order.

    None when there are no units, or when both raters used one and the same category throughout:
    chance then accounts for all of the agreement and κ is 0/0.
    """
    if len(first) != len(second):
        raise ValueError(f"the raters rated {len(first)} and {len(second)} units; pair them first")
    return cohen_kappa_of_table(Counter(zip(first, second)))


def cohen_kappa_of_table(table: Mapping[tuple[Hashable, Hashable], int]) -> float | None:
    """Return Cohen's κ from two raters' confusion table, ``{(first's category, second's): units}`` (see ``cohen_kappa``)."""
    n = sum(table.values())
    observed = sum(count for (x, y), count in table.items() if x == y)
    counts_first, counts_second = Counter(), Counter()
    for (x, y), count in table.items():
        counts_first[x] += count
        counts_second[y] += count
    # n² · p_e in whole numbers, so that "chance explains everything" is an exact test.
    chance = sum(count * counts_second[category] for category, count in counts_first.items())
    if n == 0 or chance == n * n:
        return None
    return (n * observed - chance) / (n * n - chance)


def cohen_kappa_interval(first: Sequence[Hashable], second: Sequence[Hashable], *, level: float = 0.95) -> tuple[float, float] | None:
    """Return the large-sample interval of Cohen's κ, κ ± z·√(p_o(1−p_o)/(n(1−p_e)²)), clipped to [−1, 1]; None where κ is."""
    kappa = cohen_kappa(first, second)
    if kappa is None:
        return None
    from statistics import NormalDist

    n = len(first)
    observed = sum(x == y for x, y in zip(first, second)) / n
    counts_first, counts_second = Counter(first), Counter(second)
    chance = sum(count * counts_second[category] for category, count in counts_first.items()) / (n * n)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    half_width = z * math.sqrt(observed * (1 - observed) / (n * (1 - chance) ** 2))
    return max(-1.0, kappa - half_width), min(1.0, kappa + half_width)


def pairwise_kappas(units: Units, *, min_shared: int = 5) -> list[dict]:
    """Return κ and percent agreement for every pair of raters who share at least min_shared units.

    Each entry is {"raters": (r1, r2), "kappa", "n", "percent"}, where n is the number of shared
    units and "kappa" may be None (see cohen_kappa). Raters pair in order of first appearance.
    """
    if min_shared < 1:
        raise ValueError("min_shared must be at least 1")
    order: dict[Hashable, int] = {}
    for ratings in units.values():
        for rater in _present(ratings):
            order.setdefault(rater, len(order))
    tables = pair_tables(units, order=order.__getitem__)
    return kappas_of_tables({pair: tables[pair] for pair in sorted(tables, key=lambda p: (order[p[0]], order[p[1]]))}, min_shared=min_shared)


def pair_tables(units: Units, *, order: Callable[[Hashable], Any] | None = None) -> dict[tuple, Counter]:
    """Return every pair of raters' confusion table over the units they share, ``{(r1, r2): {(v1, v2): units}}``.

    Within a pair, r1 comes first in ``order`` (a sort key; the raters themselves by default). One
    walk over the units: the cost follows the labels (a few raters per unit), not the square of
    the number of raters. Tables of disjoint sets of units add up.
    """
    tables: dict[tuple, Counter] = {}
    for ratings in units.values():
        present = _present(ratings)
        raters = sorted(present, key=order)
        for i, rater_1 in enumerate(raters):
            for rater_2 in raters[i + 1:]:
                table = tables.get((rater_1, rater_2))
                if table is None:
                    table = tables[(rater_1, rater_2)] = Counter()
                table[(present[rater_1], present[rater_2])] += 1
    return tables


def kappas_of_tables(tables: Mapping[tuple, Mapping[tuple, int]], *, min_shared: int = 5) -> list[dict]:
    """Return the ``pairwise_kappas`` entries of the pairs whose tables hold at least min_shared units, in the tables' order."""
    result = []
    for pair, table in tables.items():
        n = sum(table.values())
        if n < min_shared:
            continue
        agreeing = sum(count for (x, y), count in table.items() if x == y)
        result.append({"raters": tuple(pair), "kappa": cohen_kappa_of_table(table), "n": n, "percent": agreeing / n})
    return result


def krippendorff_alpha(units: Mapping[Hashable, Mapping[Hashable, float | str | None]], *, level: str = "ordinal") -> float | None:
    """Return Krippendorff's α at the level "nominal", "ordinal" or "interval".

    Follows Krippendorff (2011), "Computing Krippendorff's alpha-reliability", through the
    coincidence matrix. Units with fewer than two present values are not pairable and are ignored.
    Ordinal values are ranked by their sort order (pass numbers, e.g. from ordinal_value); interval
    values must be numbers. None when no unit is pairable, or when every pairable value is the same:
    the expected disagreement is then zero and α is 0/0.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    return alpha_of_coincidences(coincidences(units), level=level)


def coincidences(units: Mapping[Hashable, Mapping[Hashable, Hashable]]) -> Counter:
    """Return the coincidence matrix as ``{(c, k): o_ck}``, o_ck = Σ_u (ordered pairs of values c, k in unit u) / (m_u − 1).

    Units with fewer than two present values are not pairable and add nothing; the matrices of
    disjoint sets of units add up, so ``alpha_of_coincidences`` of a sum is α over their union.
    """
    matrix: Counter = Counter()
    for ratings in units.values():
        counts = Counter(_present(ratings).values())
        m = sum(counts.values())
        if m < 2:
            continue
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                # A value does not pair with itself: n_uc · n_uk ordered pairs, less n_uc on the diagonal.
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    matrix[(c, k)] += pairs / (m - 1)
    return matrix


def alpha_of_coincidences(matrix: Mapping[tuple[Hashable, Hashable], float], *, level: str = "ordinal") -> float | None:
    """Return Krippendorff's α from a coincidence matrix (see ``coincidences``); None as ``krippendorff_alpha`` says."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    if not matrix:
        return None
    values = dict.fromkeys(v for pair in matrix for v in pair)
    domain = sorted(values) if level != "nominal" else list(values)
    index = {value: position for position, value in enumerate(domain)}
    o = np.zeros((len(domain), len(domain)))
    for (c, k), weight in matrix.items():
        o[index[c], index[k]] += weight
    marginals = o.sum(axis=1)
    distances = _squared_distances(domain=domain, marginals=marginals, level=level)
    # α = 1 − D_o / D_e with D_o = Σ o_ck δ²_ck / n and D_e = Σ n_c n_k δ²_ck / (n (n − 1)).
    expected = (np.outer(marginals, marginals) * distances).sum()
    if expected == 0:
        return None
    observed = (o * distances).sum()
    return float(1 - (marginals.sum() - 1) * observed / expected)


def consensus_agreement(units: Units) -> dict[Hashable, dict]:
    """Return, per rater, how often their rating matches the plurality of the unit's other raters.

    Each rating in a unit with two or more ratings is compared with the most frequent category among
    the unit's other ratings; it is skipped when no single category is the most frequent. Every rater
    with a rating gets {"agree", "n", "rate"}, in order of first appearance; "rate" is None when n is 0.
    """
    tallies: dict[Hashable, dict] = {}
    for ratings in units.values():
        present = _present(ratings)
        counts = Counter(present.values())
        for rater, value in present.items():
            tally = tallies.setdefault(rater, {"agree": 0, "n": 0})
            if len(present) < 2:
                continue
            others = counts.copy()
            others[value] -= 1
            plurality = _unique_mode(others)
            if plurality is None:
                continue
            tally["n"] += 1
            tally["agree"] += int(plurality == value)
    return {rater: {**tally, "rate": tally["agree"] / tally["n"] if tally["n"] else None} for rater, tally in tallies.items()}


def _present(ratings: Mapping[Hashable, Hashable]) -> dict[Hashable, Hashable]:
    """Return the ratings without the missing ones (None or NaN)."""
    return {rater: value for rater, value in ratings.items() if not (value is None or (isinstance(value, float) and math.isnan(value)))}


def _unique_mode(counts: Counter) -> Hashable | None:
    """Return the single most frequent category, or None when several share the top count."""
    top = max(counts.values())
    modes = [category for category, count in counts.items() if count == top]
    return modes[0] if len(modes) == 1 and top > 0 else None


def _squared_distances(*, domain: list[Hashable], marginals: np.ndarray, level: str) -> np.ndarray:
    """Return δ²_ck for every two values of the domain (sorted, unless nominal)."""
    if level == "nominal":
        return 1.0 - np.eye(len(domain))
    if level == "interval":
        positions = np.asarray(domain, dtype=float)
    else:
        # The ordinal δ_ck = n_c/2 + n_(c+1) + … + n_(k−1) + n_k/2 is the gap between the mid-ranks
        # of c and k among the pairable values, so rank each value at its mid-rank.
        positions = np.cumsum(marginals) - marginals / 2
    return (positions[:, None] - positions[None, :]) ** 2
