"""The strategy comparison's bookkeeping: labels to reach random's final figure, intervals, the noiseless fallback."""

from __future__ import annotations

import math

from bench.judges import noiseless
from bench.strategy_efficacy import heldout_pairs, mean_interval, summarise


def _run(wins: list[float], agree: list[float]) -> list[dict]:
    return [{"labels": 25 * (k + 1), "win_rate_vs_base": w, "rm_judge_agreement": a} for k, (w, a) in enumerate(zip(wins, agree))]


def test_summarise_counts_the_labels_each_strategy_needs_to_reach_randoms_final_mean():
    """A strategy reaching random's final mean at 50 of 100 labels needs 50% of them; one that never does, None."""
    curves = {
        "random": [_run([0.5, 0.55, 0.6, 0.6], [0.6, 0.6, 0.7, 0.7]), _run([0.5, 0.5, 0.6, 0.62], [0.6, 0.6, 0.7, 0.7])],
        "uncertain": [_run([0.5, 0.61, 0.62, 0.63], [0.6, 0.6, 0.6, 0.6]), _run([0.5, 0.61, 0.6, 0.6], [0.6, 0.6, 0.6, 0.6])],
    }
    summary = summarise(curves)
    win = summary["win_rate_vs_base"]
    assert math.isclose(win["random_final"], 0.61)
    assert win["strategies"]["uncertain"]["labels_to_random_final"] == 50
    assert win["strategies"]["uncertain"]["fraction_of_budget"] == 0.5 and win["strategies"]["uncertain"]["goal_met"]
    assert summary["rm_judge_agreement"]["strategies"]["uncertain"]["labels_to_random_final"] is None
    assert not summary["rm_judge_agreement"]["strategies"]["uncertain"]["goal_met"]


def test_mean_interval_is_the_normal_95_percent_half_width():
    """The half-width is 1.96 standard errors of the mean."""
    mean, half = mean_interval([0.0, 1.0, 0.0, 1.0])
    assert mean == 0.5 and math.isclose(half, 1.96 * math.sqrt(1 / 3) / 2)


def test_a_judge_without_a_preference_gets_the_majority_of_its_draws():
    """A plain callable's noiseless preference is the majority of fixed draws; the held-out pairs carry its sign."""
    def longer(prompt, a, b, rng):
        return ("a" if len(a) > len(b) else "b" if len(b) > len(a) else "tie"), 1

    prefer = noiseless(longer)
    assert prefer("p", "long reply", "short") == "a" and prefer("p", "x", "xy") == "b"
    groups = [{"prompt": "p", "replies": [{"text": "aaa"}, {"text": "a"}, {"text": "bbb"}]}]
    assert heldout_pairs(groups, prefer) == [(0, 0, 1, 1), (0, 1, 2, -1)]
