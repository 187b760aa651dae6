import os
import subprocess
import sys
from pathlib import Path

import krippendorff
import numpy as np
import pytest

from feedback_app.stats.agreement import (
    cohen_kappa,
    consensus_agreement,
    krippendorff_alpha,
    ordinal_value,
    pairwise_kappas,
    percent_agreement,
)

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units,
# values 1..5, None where an observer did not rate a unit.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def units_from_rows(rows: list[list]) -> dict:
    """Turn raters × units rows into {unit: {rater: value}}."""
    return {unit: {rater: row[unit] for rater, row in enumerate(rows)} for unit in range(len(rows[0]))}


def test_stats_import_without_django_settings():
    """The package imports and computes with no Django settings, and pulls in no Django module itself."""
    code = (
        "import sys\n"
        "import feedback_app  # the parent package loads Celery, which touches django.utils\n"
        "before = set(sys.modules)\n"
        "import feedback_app.stats as stats\n"
        "assert not [m for m in set(sys.modules) - before if m.split('.')[0] == 'django']\n"
        "from django.conf import settings\n"
        "assert not settings.configured\n"
        "assert stats.percent_agreement({1: {'x': 'a', 'y': 'a'}}) == 1.0\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=Path(__file__).parents[3])


@pytest.mark.parametrize(
    ("winner", "strength", "expected"),
    [("a", 1, 1), ("a", 3, 3), ("b", 2, -2), ("b", 3, -3), ("tie", 2, 0), ("both_bad", 3, None)],
)
def test_ordinal_value_puts_a_positive_b_negative_tie_zero_and_both_bad_missing(winner, strength, expected):
    """A is +strength, B is −strength, a tie 0 whatever its strength, both_bad missing."""
    assert ordinal_value(winner=winner, strength=strength) == expected


@pytest.mark.parametrize(("winner", "strength"), [("c", 1), ("a", 0), ("b", 4)])
def test_ordinal_value_rejects_unknown_labels(winner, strength):
    """An unknown winner or a strength outside 1..3 raises ValueError."""
    with pytest.raises(ValueError):
        ordinal_value(winner=winner, strength=strength)


def test_percent_agreement_pools_pairs_over_units():
    """Agreeing pairs over all pairs; a unit with one rating has no pairs."""
    units = {
        "u1": {"r1": "a", "r2": "a", "r3": "b"},  # pairs r1r2 ✓, r1r3 ✗, r2r3 ✗ → 1 of 3
        "u2": {"r1": "tie", "r2": "tie"},  # 1 of 1
        "u3": {"r1": "b"},  # no pair
    }
    assert percent_agreement(units) == pytest.approx(2 / 4)


def test_percent_agreement_drops_missing_ratings_and_is_none_without_pairs():
    """None ratings are not ratings; with no pair at all the share is undefined."""
    assert percent_agreement({"u1": {"r1": "a", "r2": None, "r3": "a"}}) == 1.0
    assert percent_agreement({"u1": {"r1": "a", "r2": None}, "u2": {}}) is None
    assert percent_agreement({}) is None


def test_percent_agreement_counts_tie_and_both_bad_as_categories():
    """Two raters who both say both_bad agree; tie against both_bad is a disagreement."""
    units = {"u1": {"r1": "both_bad", "r2": "both_bad"}, "u2": {"r1": "tie", "r2": "both_bad"}}
    assert percent_agreement(units) == 0.5


def test_cohen_kappa_on_a_two_by_two_table():
    """50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 give κ = 0.4."""
    # p_o = (20 + 15) / 50 = 0.7. First says yes 25/50, second 30/50:
    # p_e = 0.5·0.6 + 0.5·0.4 = 0.5, so κ = (0.7 − 0.5) / (1 − 0.5) = 0.4.
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)


def test_cohen_kappa_extremes():
    """Perfect agreement is 1, systematic swapping is −1, never agreeing on one-category raters is 0."""
    assert cohen_kappa(["a", "b", "tie"], ["a", "b", "tie"]) == 1.0
    # p_o = 0, p_e = ½·½ + ½·½ = ½ → (0 − ½) / ½ = −1.
    assert cohen_kappa(["a", "b"], ["b", "a"]) == -1.0
    # p_o = 0, p_e = 0 → 0.
    assert cohen_kappa(["a", "a", "a"], ["b", "b", "b"]) == 0.0


def test_cohen_kappa_is_none_when_undefined():
    """No units, or both raters using one and the same category throughout (κ = 0/0), give None."""
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["tie"] * 4, ["tie"] * 4) is None


def test_cohen_kappa_needs_paired_ratings():
    """Sequences of different lengths raise ValueError."""
    with pytest.raises(ValueError, match="pair"):
        cohen_kappa(["a", "b"], ["a"])


def test_pairwise_kappas_keeps_pairs_with_enough_shared_units():
    """Every rater pair with ≥ min_shared shared units gets κ, n and percent; missing ratings are not shared."""
    units = {
        1: {"ann": "a", "bob": "a", "cy": "a"},
        2: {"ann": "b", "bob": "b", "cy": None},
        3: {"ann": "a", "bob": "b"},
        4: {"ann": "b", "bob": "b", "cy": "b"},
    }
    result = pairwise_kappas(units, min_shared=3)
    assert [entry["raters"] for entry in result] == [("ann", "bob")]
    # ann a b a b, bob a b b b: p_o = 3/4; ann a 2/4, bob a 1/4 → p_e = ½·¼ + ½·¾ = ½ → κ = ½.
    assert result[0]["n"] == 4 and result[0]["percent"] == 0.75 and result[0]["kappa"] == pytest.approx(0.5)
    both = pairwise_kappas(units, min_shared=2)
    assert [(entry["raters"], entry["n"], entry["percent"], entry["kappa"]) for entry in both[1:]] == [
        (("ann", "cy"), 2, 1.0, 1.0),
        (("bob", "cy"), 2, 1.0, 1.0),
    ]


def test_pairwise_kappas_needs_a_positive_threshold():
    """min_shared below 1 raises ValueError."""
    with pytest.raises(ValueError):
        pairwise_kappas({}, min_shared=0)


def test_krippendorff_alpha_nominal_on_a_small_example():
    """Units (a,a), (a,b), (b,b) give α = 4/9."""
    # o_aa = 2, o_ab = o_ba = 1, o_bb = 2; n_a = n_b = 3, n = 6.
    # α = 1 − (n − 1)·Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k = 1 − 5·2 / (2·3·3) = 4/9.
    units = {1: {"x": "a", "y": "a"}, 2: {"x": "a", "y": "b"}, 3: {"x": "b", "y": "b"}}
    assert krippendorff_alpha(units, level="nominal") == pytest.approx(4 / 9, abs=1e-12)


def test_krippendorff_alpha_interval_and_ordinal_by_hand():
    """Units (0,1), (2,2) and an unpairable (1,−) give interval α 8/11 and ordinal α 5/6."""
    units = {1: {"x": 0, "y": 1}, 2: {"x": 2, "y": 2}, 3: {"x": 1, "y": None}}
    # Pairable values 0, 1, 2, 2: o_01 = o_10 = 1, o_22 = 2; n_0 = n_1 = 1, n_2 = 2, n = 4.
    # Interval: Σ o δ² = 2·1 = 2; Σ n_c n_k δ² = 2·(1·1·1 + 1·2·4 + 1·2·1) = 22 → α = 1 − 3·2/22 = 8/11.
    assert krippendorff_alpha(units, level="interval") == pytest.approx(8 / 11, abs=1e-12)
    # Ordinal: δ_01 = 1/2 + 1/2 = 1, δ_02 = 1/2 + 1 + 2/2 = 2.5, δ_12 = 1/2 + 2/2 = 1.5;
    # Σ o δ² = 2; Σ n_c n_k δ² = 2·(1 + 2·6.25 + 2·2.25) = 36 → α = 1 − 3·2/36 = 5/6.
    assert krippendorff_alpha(units, level="ordinal") == pytest.approx(5 / 6, abs=1e-12)


def test_krippendorff_alpha_reproduces_krippendorff_2011():
    """The paper's reliability data give nominal 0.743, ordinal 0.815 and interval 0.849."""
    units = units_from_rows(KRIPPENDORFF_2011)
    # Nominal: n = 40, Σ o_cc = 32, marginals 9, 13, 10, 5, 3 (Σ n_c² = 384):
    # α = 1 − 39·(40 − 32) / (40² − 384) = 1 − 312/1216.
    assert krippendorff_alpha(units, level="nominal") == pytest.approx(1 - 312 / 1216, abs=1e-12)
    assert round(krippendorff_alpha(units, level="ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(units, level="interval"), 3) == 0.849


def test_krippendorff_alpha_ordinal_on_labels_drops_both_bad():
    """Labels enter ordinal α through ordinal_value, so a both_bad rating is missing."""
    labels = {
        1: {"x": ("a", 3), "y": ("a", 2)},
        2: {"x": ("b", 1), "y": ("tie", 1)},
        3: {"x": ("both_bad", 1), "y": ("a", 1)},
        4: {"x": ("b", 3), "y": ("b", 3)},
    }
    values = {unit: {rater: ordinal_value(winner=w, strength=s) for rater, (w, s) in ratings.items()} for unit, ratings in labels.items()}
    without_unit_3 = {unit: ratings for unit, ratings in values.items() if unit != 3}
    assert values[3]["x"] is None
    assert krippendorff_alpha(values) == krippendorff_alpha(without_unit_3)
    assert krippendorff_alpha(values) == pytest.approx(krippendorff.alpha(np.array([[3, -1, -3], [2, 0, -3]]), level_of_measurement="ordinal"), abs=1e-12)


def test_krippendorff_alpha_is_none_when_undefined():
    """Nothing pairable, or one single value throughout (no expected disagreement), gives None."""
    assert krippendorff_alpha({1: {"x": 1, "y": None}, 2: {"x": 2}}) is None
    assert krippendorff_alpha({}) is None
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha({1: {"x": 1, "y": 1}, 2: {"x": 1, "y": 1, "z": 1}, 3: {"x": 2}}, level=level) is None


def test_krippendorff_alpha_treats_nan_as_missing_and_rejects_unknown_levels():
    """A float NaN is a missing value; a level other than nominal/ordinal/interval raises ValueError."""
    with_nan = {1: {"x": 0.0, "y": 1.0, "z": float("nan")}, 2: {"x": 2.0, "y": 2.0}}
    with_none = {1: {"x": 0.0, "y": 1.0, "z": None}, 2: {"x": 2.0, "y": 2.0}}
    assert krippendorff_alpha(with_nan, level="interval") == krippendorff_alpha(with_none, level="interval")
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(with_none, level="ratio")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_alpha_matches_the_krippendorff_package(seed, level):
    """On random data with missing values, α agrees with the reference implementation to 1e-9."""
    rng = np.random.default_rng(seed)
    raters, n_units = rng.integers(2, 7), rng.integers(5, 60)
    if level == "interval":
        data = rng.normal(size=(raters, n_units)).round(2)
    else:
        data = rng.integers(-3, 4, size=(raters, n_units)).astype(float)
    data[rng.random(size=data.shape) < 0.35] = np.nan
    units = {unit: {rater: None if np.isnan(data[rater, unit]) else float(data[rater, unit]) for rater in range(raters)} for unit in range(n_units)}
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(units, level=level) == pytest.approx(expected, abs=1e-9)


def test_consensus_agreement_compares_each_rating_with_the_others_plurality():
    """Leave-one-out: a rating meets the others' most frequent category; ties among the others are skipped."""
    units = {
        1: {"ann": "a", "bob": "a", "cy": "b"},  # ann vs {a, b}: no plurality; bob likewise; cy vs {a, a}: ✗
        2: {"ann": "tie", "bob": "tie"},  # ann vs {tie}: ✓; bob vs {tie}: ✓
        3: {"ann": "b", "bob": "a", "cy": "a", "dee": "a"},  # ann vs {a,a,a}: ✗; bob, cy, dee vs {b,a,a}: ✓
        4: {"ann": "both_bad", "eve": None},  # one rating: nothing to compare
    }
    assert consensus_agreement(units) == {
        "ann": {"agree": 1, "n": 2, "rate": 0.5},
        "bob": {"agree": 2, "n": 2, "rate": 1.0},
        "cy": {"agree": 1, "n": 2, "rate": 0.5},
        "dee": {"agree": 1, "n": 1, "rate": 1.0},
    }


def test_consensus_agreement_reports_raters_without_comparisons():
    """A rater whose ratings were never compared gets n 0 and rate None."""
    units = {1: {"ann": "a"}, 2: {"ann": "a", "bob": "b", "cy": "tie"}}
    assert consensus_agreement(units)["ann"] == {"agree": 0, "n": 0, "rate": None}


def test_kappa_interval_holds_kappa_and_narrows_with_more_units():
    """The interval holds κ, stays within [−1, 1], narrows as the units grow, and is None where κ is."""
    from feedback_app.stats.agreement import cohen_kappa, cohen_kappa_interval

    first, second = ["a", "b", "a", "a", "b", "b", "a", "b"], ["a", "b", "a", "b", "b", "b", "a", "a"]
    low, high = cohen_kappa_interval(first, second)
    assert -1 <= low < cohen_kappa(first, second) < high <= 1
    low4, high4 = cohen_kappa_interval(first * 4, second * 4)
    assert high4 - low4 < high - low
    assert cohen_kappa_interval(["a", "a"], ["a", "a"]) is None
