import math

import numpy as np

from rm_trainer.data import PreferencePair
from rm_trainer.evaluate import calibration, evaluate_pairs, length_baseline, pairwise_metrics


def test_zero_differences_give_a_coin_and_ln2():
    """Equal rewards are right half the time and cost ln 2."""
    metrics = pairwise_metrics([0.0, 0.0, 0.0])
    assert metrics["accuracy"] == 0.5 and math.isclose(metrics["loss"], math.log(2))
    assert metrics["n"] == 3 and metrics["n_ties"] == 0


def test_ties_are_left_out_of_accuracy_but_not_loss():
    """A tie has no right answer: it counts in loss and n, not in accuracy or calibration."""
    metrics = pairwise_metrics([2.0, -2.0, 0.0], tie=[False, False, True])
    assert metrics["accuracy"] == 0.5
    assert metrics["n"] == 3 and metrics["n_ties"] == 1
    assert sum(b["count"] for b in metrics["bins"]) == 2
    tie_loss = math.log(2)
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(2)) + tie_loss) / 3
    assert math.isclose(metrics["loss"], expected, rel_tol=1e-9)


def test_calibrated_confidence_has_zero_ece():
    """Confidence 0.75 that is right three times in four is perfectly calibrated."""
    d = math.log(3)  # σ(d) = 0.75
    result = calibration(np.array([d, d, d, -d]))
    assert math.isclose(result["ece"], 0.0, abs_tol=1e-9)
    (only,) = result["bins"]
    assert math.isclose(only["p_mean"], 0.75) and only["accuracy"] == 0.75 and only["count"] == 4


def test_overconfidence_shows_in_ece_and_bins():
    """Confidence near 1 that is right half the time has an ECE near 0.5."""
    result = calibration(np.array([10.0, -10.0] * 5))
    assert result["ece"] > 0.49
    assert result["bins"][-1]["accuracy"] == 0.5 and result["bins"][-1]["count"] == 10


def test_empty_validation_gives_no_figures():
    """No validation pairs give counts of zero and no accuracy."""
    metrics = pairwise_metrics([])
    assert metrics["n"] == 0 and metrics["accuracy"] is None and metrics["ece"] is None and metrics["bins"] == []


def test_length_baseline_picks_the_longer_reply():
    """The length rule is right when the chosen reply is longer; equal lengths count one half."""
    pairs = [
        PreferencePair("1", "p", "a long reply", "short"),
        PreferencePair("2", "p", "short", "a long reply"),
        PreferencePair("3", "p", "same", "size"),
        PreferencePair("4", "p", "tie", "ignored here", tie=True),
    ]
    assert length_baseline(pairs) == {"n": 3, "accuracy": 0.5}


class FixedScorer:
    """Score a response by its number of "good" words, with two members that differ by a constant."""

    def member_rewards_batch(self, items):
        out = []
        for _, responses in items:
            base = np.array([r.count("good") for r in responses], dtype=np.float32)
            out.append(np.stack([base, base + 1.0]))
        return out


def test_evaluate_pairs_uses_the_ensemble_mean():
    """A scorer that prefers "good" gets the pairs right, and its member spread is reported."""
    pairs = [PreferencePair("1", "p", "good good", "bad"), PreferencePair("2", "p", "bad", "good")]
    metrics = evaluate_pairs(FixedScorer(), pairs)
    assert metrics["accuracy"] == 0.5 and metrics["n"] == 2
    assert math.isclose(metrics["uncertainty"], 0.5)
