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


def test_the_ceiling_fits_every_train_pair_and_learns_a_judge_its_features_can_see():
    """With one feature the judge reads (the length), every train pair labelled by the noiseless preference teaches the
    fast tier to agree on nearly every held-out pair and to pick the longest candidate, as the judge's own best of 4 would."""
    import random
    from types import SimpleNamespace

    import numpy as np

    from bench.strategy_efficacy import Simulation
    from rm_trainer.config import FitConfig

    def longer(prompt, a, b, rng):
        return ("a" if len(a) > len(b) else "b" if len(b) > len(a) else "tie"), 2

    rng = random.Random(0)
    groups = []
    for split, n in (("train", 30), ("heldout", 10)):
        for k in range(n):
            sizes = rng.sample(range(1, 60), 5 if split == "heldout" else 4)
            groups.append({"split": split, "prompt": f"p{k}", "replies": [{"text": "x" * size, "truncated": False} for size in sizes]})
    x = {id(g): np.array([[len(r["text"]) / 60.0, 1.0] for r in g["replies"]], dtype=np.float32) for g in groups}
    pool = {"groups": groups, "spec": {"candidates": 4}}
    sim = Simulation(pool, x, longer, SimpleNamespace(draws=2), FitConfig(backbone="unused", ensemble_size=2, epochs=200, patience=200))
    ceiling = sim.ceiling(0, noisy=False)
    assert ceiling["labels"] == 30 * 6
    best_of_4 = [max(len(r["text"]) for r in g["replies"][:4]) > len(g["replies"][4]["text"]) for g in groups if g["split"] == "heldout"]
    assert ceiling["rm_judge_agreement"] > 0.9 and ceiling["win_rate_noiseless"] == sum(best_of_4) / len(best_of_4)
