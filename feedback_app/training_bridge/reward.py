"""Reward-model operations: fit a version, score responses, judge comparisons, evaluate on pairs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from feedback_app.training_bridge.conversion import prompt_as_text
from feedback_app.training_bridge.errors import RunStopped
from feedback_app.training_bridge.holder import ModelHolder
from feedback_app.training_bridge.sources import fit_config
from feedback_app.training_bridge.store import checkpoint_store, version_folder

if TYPE_CHECKING:
    from rm_trainer.data import PreferencePair
    from rm_trainer.pair_facts import PairFacts
    from rm_trainer.train import FitResult


def reward_fit(
    *,
    pairs: Sequence[PreferencePair],
    tier: str,
    name: str,
    parent: str | None,
    baseline_path: str | None,
    warm_start_path: str | None,
    progress: Callable[[dict], None],
    should_stop: Callable[[], bool],
    models: ModelHolder,
    warm_heads_path: str | None = None,
    facts: PairFacts | None = None,
) -> FitResult:
    """Fit reward version ``name`` and return rm_trainer's FitResult; raise RunStopped when ``should_stop`` stopped it.

    A fast fit may start from the heads of the version at ``warm_heads_path`` (rm_trainer.replay). ``facts``: the pairs'
    ``pair_facts``, kept by the caller (worked out per pair otherwise).
    """
    from rm_trainer.train import FitCancelled, fit

    warm_heads = str(version_folder(warm_heads_path)) if warm_heads_path else None
    try:
        return fit(
            pairs, fit_config(tier=tier, warm_start_path=warm_start_path), store=checkpoint_store(), name=name, parent=parent,
            baseline=str(version_folder(baseline_path)) if baseline_path else None,
            progress=progress, should_stop=should_stop, encoders=models.encoders, warm_heads=warm_heads, facts=facts,
        )
    except FitCancelled:
        raise RunStopped("the run was stopped while it trained") from None


def reward_scores(
    *, version_name: str, version_path: str, prompt: str, context: Sequence[dict], responses: Sequence[str], models: ModelHolder,
) -> list[float]:
    """Return the rewards of ``responses`` to a prompt under reward version ``version_name``."""
    scorer = models.scorer(version_name, version_path)
    return [float(r) for r in scorer.score(prompt_as_text(text=prompt, context=context), list(responses))]


def comparisons_prob_a_wins(
    *, version_name: str, version_path: str, items: Sequence[tuple[str, Sequence[dict], str, str]], models: ModelHolder,
) -> list[float]:
    """Return the reward model's probability that response A beats B for each (prompt, context, a, b)."""
    scorer = models.batch_scorer(version_name, version_path)
    scored = scorer.score_batch([(prompt_as_text(text=text, context=context), [a, b]) for text, context, a, b in items])
    return [1.0 / (1.0 + math.exp(-(ra - rb))) for ra, rb in scored]


def comparisons_rm_judge(
    *, version_name: str, version_path: str, items: Sequence[tuple[str, Sequence[dict], str, str]], models: ModelHolder,
) -> list[tuple[float, float]]:
    """Return the ensemble's P(A beats B) and its members' spread for each (prompt, context, a, b), with the loaded scorer."""
    scorer = models.scorer(version_name, version_path)
    return scorer.pair_probabilities_batch([(prompt_as_text(text=text, context=context), a, b) for text, context, a, b in items])


def pairs_evaluate(*, version_name: str, version_path: str, pairs: Sequence[PreferencePair], models: ModelHolder) -> dict:
    """Return rm_trainer's validation figures of a reward version on ``pairs``."""
    from rm_trainer.evaluate import evaluate_pairs

    return evaluate_pairs(models.scorer(version_name, version_path), pairs)
