"""Data across the boundary: ORM rows to rm_trainer's dataclasses, prompts to text, results to site metrics.

rm_trainer's modules used here (data, transcript) import no torch, so a web process may call these.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from rm_trainer.data import is_validation  # noqa: F401  (re-exported: the split rule of both packages)
from rm_trainer.transcript import prompt_as_text, split_dialogues, text_as_turns  # noqa: F401  (the one HH format)

if TYPE_CHECKING:
    from feedback_app.models import PreferenceLabel
    from rm_trainer.data import PreferencePair
    from rm_trainer.dpo import DPOResult, WinRate
    from rm_trainer.pair_facts import PairFacts
    from rm_trainer.train import FitResult


def label_weight(label: PreferenceLabel, *, weights: dict[int, float], ai_weights: dict[int, float]) -> float:
    """Return a label's weight in training: its rater's (default 1; imported labels count 1), or for an AI label
    its judge version's in ``ai_weights`` (default 0: an AI label counts only where the caller says so)."""
    if label.judge_version_id is not None:
        return ai_weights.get(label.judge_version_id, 0.0)
    return weights.get(label.rater_id, 1.0)


def labels_aggregate(
    labels: Sequence[PreferenceLabel], *, margins: Sequence[float], weights: dict[int, float] | None = None, verdict: str = "",
    ai_weights: dict[int, float] | None = None,
) -> PreferencePair | None:
    """Aggregate the labels of one comparison into the pair the trainer would learn from.

    ``weights`` maps rater ids to trust in 0..1 and ``ai_weights`` judge versions to the weight of
    their labels (see ``label_weight``); labels weighted 0 are left out. An admin's ``verdict``
    stands in for all the votes.
    """
    from rm_trainer.data import LabelVote, aggregate_votes

    weights, ai_weights = weights or {}, ai_weights or {}
    labels = [label for label in labels if label_weight(label, weights=weights, ai_weights=ai_weights) > 0]
    if not labels:
        return None
    comparison = labels[0].comparison
    text = prompt_as_text(text=comparison.prompt.text, context=comparison.prompt.context)

    def vote(winner: str, strength: int, weight: float) -> LabelVote:
        return LabelVote(comparison_id=str(comparison.pk), prompt=text, response_a=comparison.response_a.text,
                         response_b=comparison.response_b.text, winner=winner, strength=strength, weight=weight)

    if verdict:
        votes = [vote(verdict, 2, 1.0)]
    else:
        votes = [vote(label.winner, label.strength, label_weight(label, weights=weights, ai_weights=ai_weights)) for label in labels]
    pairs = aggregate_votes(votes, strength_margins=tuple(margins))
    return pairs[0] if pairs else None


def rewrite_pairs(label: PreferenceLabel, *, margins: Sequence[float], weight: float = 1.0) -> list[PreferencePair]:
    """Return the pairs a label's rewrite implies: the rewrite better than each of the comparison's two replies.

    Against the reply the rater chose against (a or b) the margin is the label's strength's, as the
    rewrite is at least as good as the reply that beat it; against the chosen reply, and after a
    tie or both bad, how much better is not known, so there is none. ``weight`` is the rater's
    trust, as for the label's own vote. The pairs share their comparison's side of the validation
    split, so a rewrite never trains what its comparison validates.
    """
    from rm_trainer.data import PreferencePair

    if label.rewrite_id is None or weight <= 0:
        return []
    comparison = label.comparison
    text = prompt_as_text(text=comparison.prompt.text, context=comparison.prompt.context)
    pairs = []
    for side, reply in (("a", comparison.response_a), ("b", comparison.response_b)):
        beaten = label.winner in ("a", "b") and side != label.winner
        pairs.append(PreferencePair(
            pair_id=f"{comparison.pk}-rewrite-{label.pk}-{side}", prompt=text, chosen=label.rewrite.text, rejected=reply.text,
            margin=margins[label.strength - 1] if beaten else 0.0, weight=weight, split_key=str(comparison.pk),
        ))
    return pairs


def preference_pairs(
    labels: Iterable[PreferenceLabel], *, weights: dict[int, float] | None = None, verdicts: dict[int, str] | None = None,
    ai_weights: dict[int, float] | None = None,
) -> list[PreferencePair]:
    """Return the training pairs of labels ordered by comparison: one per decided comparison, then those its rewrites imply.

    AI labels count with their judge version's weight in ``ai_weights`` and not at all without one.
    """
    pairs = []
    weights, verdicts = weights or {}, verdicts or {}
    for comparison_id, group in itertools.groupby(labels, key=lambda label: label.comparison_id):
        group = list(group)
        if all(label_weight(label, weights=weights, ai_weights=ai_weights or {}) <= 0 for label in group):
            continue  # an admin's verdict stands in only for votes that count
        pair = labels_aggregate(group, margins=settings.STRENGTH_MARGINS, weights=weights, verdict=verdicts.get(comparison_id, ""),
                                ai_weights=ai_weights)
        if pair is not None:
            pairs.append(pair)
        for label in group:
            pairs += rewrite_pairs(label, margins=settings.STRENGTH_MARGINS, weight=weights.get(label.rater_id, 1.0))
    return pairs


def pair_facts(pairs: Sequence[PreferencePair]) -> PairFacts:
    """Return what a reward fit works out per pair (its digest, its side of the validation split), for a caller that keeps it."""
    from rm_trainer.pair_facts import pair_facts

    return pair_facts(pairs, reward_validation_fraction())


def pair_facts_kept(digests: Sequence[int], validation: Sequence[bool]) -> PairFacts:
    """Return the ``PairFacts`` of pairs whose ``pair_facts`` a caller kept (digest and validation flag per pair, in order)."""
    import numpy as np

    from rm_trainer.pair_facts import PairFacts

    return PairFacts(np.array(digests, dtype=np.uint64), np.array(validation, dtype=bool), reward_validation_fraction())


def reward_validation_fraction() -> float:
    """Return the share of pairs a reward fit validates on (rm_trainer's fixed split: ``fit_config`` leaves FitConfig's default,
    and a fit refuses facts of another)."""
    from rm_trainer.config import FitConfig

    return next(f.default for f in dataclasses.fields(FitConfig) if f.name == "validation_fraction")


def read_preference_file(path: Path) -> list[PreferencePair]:
    """Read a TRL or HH JSONL file (optionally .gz) into pairs, raising ValueError naming the line."""
    from rm_trainer.data import read_preference_file

    return read_preference_file(path)[0]


def validation_summary(metrics: dict | None) -> dict | None:
    """Return rm_trainer's validation figures under the site's names (None stays None)."""
    if metrics is None:
        return None
    return {"val_accuracy": metrics.get("accuracy"), "val_loss": metrics.get("loss"), "val_ece": metrics.get("ece"), "n": metrics.get("n")}


def reward_fit_metrics(result: FitResult) -> dict:
    """Return a fit's figures as a reward version and its run record them (the gate's verdict is added by the caller)."""
    return {
        "val_accuracy": result.metrics.get("accuracy"), "val_loss": result.metrics.get("loss"), "val_ece": result.metrics.get("ece"),
        "calibration": result.metrics.get("bins"), "n_train": result.n_train, "n_validation": result.n_validation,
        "seconds": round(result.seconds, 2), "baseline": validation_summary(result.baseline_metrics),
        "heads_warm_from": (result.manifest.get("replay") or {}).get("warm_from"),
    }


def policy_update_metrics(result: DPOResult, win: WinRate) -> dict:
    """Return a DPO run's figures, its win rate, the mean reply lengths behind it and its KL to the base as a policy version and its
    run record them."""
    return {
        "win_rate_vs_parent": win.win_rate, "wins": win.wins, "ties": win.ties, "losses": win.losses, "n_eval_prompts": win.n,
        "mean_reward_gap": win.mean_reward_gap, "dpo_loss": result.metrics.get("loss"),
        "dpo_reward_accuracy": result.metrics.get("reward_accuracy"), "n_pairs": result.n_pairs, "steps": result.steps,
        "beta": result.metrics.get("beta"), "seconds_per_step": _rounded(result.metrics.get("seconds_per_step"), 3),
        "reference_seconds": _rounded(result.metrics.get("reference_seconds"), 2), "seconds": round(result.seconds, 2),
        # the replies judged on the held-out prompts: the new version's, and its parent's for comparison
        "mean_reply_tokens": _rounded(getattr(win, "mean_reply_tokens", None), 1),
        "mean_reply_chars": _rounded(getattr(win, "mean_reply_chars", None), 1),
        "parent_mean_reply_tokens": _rounded(getattr(win, "old_mean_reply_tokens", None), 1),
        "parent_mean_reply_chars": _rounded(getattr(win, "old_mean_reply_chars", None), 1),
        # the new version's KL to the base policy, from its own replies there (None when no base was given)
        "kl_to_base": _rounded(getattr(win, "kl_to_base", None), 4),
        "kl_to_base_per_token": _rounded(getattr(win, "kl_to_base_per_token", None), 4),
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
