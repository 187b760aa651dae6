"""Validation figures for a reward model, from the reward differences it gives pairs.

For a pair, d = r(chosen) - r(rejected) and p = σ(d) is the model's probability that the
chosen response wins. The figures:

- ``accuracy``: the share of preference pairs with d > 0 (d == 0 counts one half). Tie pairs
  are excluded: they have no right answer to get right.
- ``loss``: the mean log-loss of p against the label (1 for a preference, 0.5 for a tie),
  every pair counted once, margins ignored; ties are included here.
- ``ece`` and ``bins``: calibration of the confidence max(p, 1 - p) in the predicted winner,
  over preference pairs, in equal-width bins on [0.5, 1]; each bin gives the mean confidence
  ``p_mean``, the share of its pairs predicted right ``accuracy``, and ``count``. ECE is the
  count-weighted mean gap |accuracy - p_mean|.
- ``n`` pairs in all, ``n_ties`` of them ties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from rm_trainer.data import PreferencePair

if TYPE_CHECKING:
    from rm_trainer.scorer import RewardScorer


def pairwise_metrics(diffs: Sequence[float] | np.ndarray, tie: Sequence[bool] | None = None, *, bins: int = 10) -> dict[str, Any]:
    """Return accuracy, loss, ECE, reliability bins and counts for reward differences."""
    diffs = np.asarray(diffs, dtype=np.float64)
    tie = np.zeros(len(diffs), dtype=bool) if tie is None else np.asarray(tie, dtype=bool)
    preferred = diffs[~tie]
    log_p, log_q = _log_sigmoid(diffs), _log_sigmoid(-diffs)
    losses = np.where(tie, -0.5 * (log_p + log_q), -log_p)
    metrics: dict[str, Any] = {
        "n": int(len(diffs)),
        "n_ties": int(tie.sum()),
        "accuracy": _accuracy(preferred),
        "loss": float(losses.mean()) if len(diffs) else None,
    }
    metrics.update(calibration(preferred, bins=bins))
    return metrics


def calibration(diffs: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    """Return ECE and reliability bins of the confidence in the predicted winner of preference pairs."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(diffs, dtype=np.float64)))
    confidence = np.maximum(p, 1.0 - p)
    correct = np.where(diffs == 0, 0.5, (diffs > 0).astype(np.float64))
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        in_bin = which == b
        count = int(in_bin.sum())
        if count:
            p_mean, accuracy = float(confidence[in_bin].mean()), float(correct[in_bin].mean())
            ece += count / len(diffs) * abs(accuracy - p_mean)
            table.append({"p_mean": p_mean, "accuracy": accuracy, "count": count})
    return {"ece": float(ece) if len(diffs) else None, "bins": table}


def evaluate_pairs(scorer: RewardScorer, pairs: Sequence[PreferencePair], *, bins: int = 10) -> dict[str, Any]:
    """Return ``pairwise_metrics`` of the scorer on the pairs, plus the mean ensemble spread."""
    members = scorer.member_rewards_batch([(p.prompt, [p.chosen, p.rejected]) for p in pairs])
    diffs = np.array([m.mean(0)[0] - m.mean(0)[1] for m in members])
    metrics = pairwise_metrics(diffs, [p.tie for p in pairs], bins=bins)
    metrics["uncertainty"] = float(np.mean([m.std(0).mean() for m in members])) if members else None
    return metrics


def length_baseline(pairs: Sequence[PreferencePair]) -> dict[str, Any]:
    """Return the accuracy of picking the longer reply (in characters; equal lengths count one half)."""
    diffs = np.sign([len(p.chosen) - len(p.rejected) for p in pairs if not p.tie])
    return {"n": int(len(diffs)), "accuracy": _accuracy(diffs)}


def _accuracy(diffs: np.ndarray) -> float | None:
    if not len(diffs):
        return None
    return float(((diffs > 0) + 0.5 * (diffs == 0)).mean())


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)
