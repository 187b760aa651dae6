"""Policy operations: the base policy, candidate, sample and best-of-n replies, the pair to show, DPO updates (with on-policy pairs), their win rate, export."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from feedback_app.training_bridge.conversion import prompt_as_text
from feedback_app.training_bridge.errors import GenerationStopped, RunStopped
from feedback_app.training_bridge.holder import ModelHolder
from feedback_app.training_bridge.sources import dpo_config, generation_config, generator_source
from feedback_app.training_bridge.store import checkpoint_store, version_folder

if TYPE_CHECKING:
    from rm_trainer.data import PreferencePair
    from rm_trainer.dpo import DPOResult, WinRate


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


class Candidates(NamedTuple):
    """Candidate replies per prompt and, aligned with them, whether each hit the token budget."""

    texts: list[list[str]]
    truncated: list[list[bool]]


def candidates_generate(
    *, policy_name: str, policy_path: str, prompts: Sequence[tuple[str, Sequence[dict]]], n: int, seed: int, models: ModelHolder,
    should_stop: Callable[[], bool] | None = None,
) -> Candidates:
    """Return up to ``n`` distinct candidate replies per (prompt, context), from one batched pass, with their truncated flags;
    raise GenerationStopped when ``should_stop()`` (asked after every token) answered True."""
    from rm_trainer.generator import PromptItem

    generator = models.generator(policy_name, policy_path)
    items = [PromptItem(prompt=text, context=tuple(context)) for text, context in prompts]
    with _stoppable():
        result = generator.generate_with_stats(items, n, generation_config(seed=seed), should_stop=should_stop)
    return Candidates(texts=result.texts, truncated=result.truncated)


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """rm_trainer's GenerationStopped as the site's."""
    from rm_trainer.decoding import GenerationStopped as Stopped

    try:
        yield
    except Stopped as exc:
        raise GenerationStopped(str(exc)) from None


def replies_generate(
    *, policy_name: str, policy_path: str, prompts: Sequence[tuple[str, Sequence[dict]]], seed: int,
    max_new_tokens: int, temperature: float, models: ModelHolder,
) -> list[str]:
    """Return one sampled reply per (prompt, context) from policy ``policy_name``, in order ("" where the sample was empty)."""
    from rm_trainer.generator import PromptItem

    generator = models.generator(policy_name, policy_path)
    items = [PromptItem(prompt=text, context=tuple(context)) for text, context in prompts]
    config = generation_config(seed=seed, max_new_tokens=max_new_tokens, temperature=temperature)
    return [samples[0] if samples else "" for samples in generator.generate_with_stats(items, 1, config).raw]


def replies_rerank(
    *, policy_name: str, policy_path: str, reward_name: str, reward_path: str, prompts: Sequence[tuple[str, Sequence[dict]]],
    n: int, seed: int, max_new_tokens: int, temperature: float, models: ModelHolder, should_stop: Callable[[], bool] | None = None,
) -> Candidates:
    """Return, per (prompt, context) in order, the best of ``n`` sampled replies of policy ``policy_name`` by reward model
    ``reward_name`` (the rerank tier; see ``rm_trainer.rerank``), one text and one truncated flag each ("" where no sample was usable);
    raise GenerationStopped as ``candidates_generate`` does."""
    from rm_trainer.generator import PromptItem
    from rm_trainer.rerank import best_of_n

    generator = models.generator(policy_name, policy_path)
    scorer = models.scorer(reward_name, reward_path)
    items = [PromptItem(prompt=text, context=tuple(context)) for text, context in prompts]
    config = generation_config(seed=seed, max_new_tokens=max_new_tokens, temperature=temperature)
    # The generator sees the conversation as chat turns; the reward model reads it as one text.
    with _stoppable():
        chosen = best_of_n(generator, items, n, lambda item, replies: scorer.score(prompt_as_text(text=item.prompt, context=item.context),
                                                                                   list(replies)), config, should_stop=should_stop)
    return Candidates(texts=[[best.text] for best in chosen], truncated=[[best.truncated] for best in chosen])


def pairs_choose(
    *, reward_name: str | None, reward_path: str | None, prompts: Sequence[tuple[str, Sequence[dict]]],
    candidates: Sequence[Sequence[str]], strategy: str, seed: int, models: ModelHolder,
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
    scorer = models.scorer(reward_name, reward_path)
    items = [(prompt_as_text(text=text, context=context), list(c)) for (text, context), c in zip(prompts, candidates)]
    rewards, embeddings = scorer.rewards_and_embeddings_batch(items)
    chosen = select_pairs(rewards, SelectionConfig(strategy=strategy, seed=seed), embeddings)
    return [None if p is None else (p.i, p.j, float(p.score)) for p in chosen]


def online_pairs(
    *, policy_name: str, policy_path: str, reward_name: str, reward_path: str, prompts: Sequence[tuple[str, Sequence[dict]]],
    seed: int, models: ModelHolder, progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
) -> list[PreferencePair]:
    """Return on-policy pairs for (prompt, context)s: DPO_ONLINE_SAMPLES replies of policy ``policy_name`` each, best vs worst
    by reward model ``reward_name`` when their gap exceeds DPO_ONLINE_MIN_GAP (see ``rm_trainer.online``); raise
    RunStopped when ``should_stop`` stopped it."""
    from rm_trainer.dpo import DPOCancelled
    from rm_trainer.generator import PromptItem
    from rm_trainer.online import on_policy_pairs

    config = dpo_config()
    generator = models.generator(policy_name, policy_path)
    scorer = models.scorer(reward_name, reward_path)
    items = [PromptItem(prompt=text, context=tuple(context)) for text, context in prompts]

    def as_text(item: PromptItem) -> str:  # the form the human pairs' prompts take, and the reward model reads
        return prompt_as_text(text=item.prompt, context=item.context)

    try:
        return on_policy_pairs(
            generator, items, lambda item, replies: scorer.score(as_text(item), list(replies)), generation_config(seed=seed),
            n=config.online_samples, min_gap=config.online_min_gap, prompt_text=as_text, progress=progress, should_stop=should_stop,
        )
    except DPOCancelled:
        raise RunStopped("the run was stopped while it sampled on-policy pairs") from None


def dpo_train(
    *, base_name: str, base_path: str, name: str, pairs: Sequence[PreferencePair],
    progress: Callable[[dict], None], should_stop: Callable[[], bool],
) -> DPOResult:
    """Fine-tune policy ``base_name`` with DPO into policy version ``name``; raise RunStopped when ``should_stop`` stopped it."""
    from rm_trainer.dpo import DPOCancelled, train_dpo

    try:
        return train_dpo(version_folder(base_path), pairs, dpo_config(), store=checkpoint_store(), name=name, parent=base_name,
                         progress=progress, should_stop=should_stop)
    except DPOCancelled:
        raise RunStopped("the run was stopped while it trained") from None


def policy_win_rate(
    *, new_path: str, old_name: str, old_path: str, reward_name: str, reward_path: str,
    prompts: Sequence[tuple[str, Sequence[dict]]], seed: int, models: ModelHolder,
    base_name: str | None = None, base_path: str | None = None,
) -> WinRate:
    """Return rm_trainer's WinRate of the policy at ``new_path`` over policy ``old_name``, judged by the reward model,
    with the new policy's KL to policy ``base_name`` when given (the holder's generator: the old one, when that is the base)."""
    from rm_trainer.dpo import policy_win_rate as win_rate
    from rm_trainer.generator import PromptItem

    new = models.generator_unkept(new_path)
    old = models.generator(old_name, old_path)
    base = models.generator(base_name, base_path) if base_name is not None and base_path is not None else None
    scorer = models.scorer(reward_name, reward_path)
    items = [PromptItem(prompt=text, context=tuple(context)) for text, context in prompts]
    # The generators see the conversation as chat turns; the reward model reads it as one text.
    as_text = {text: prompt_as_text(text=text, context=context) for text, context in prompts}
    return win_rate(new, old, items, lambda prompt, responses: scorer.score(as_text.get(prompt, prompt), list(responses)),
                    generation_config(seed=seed), base=base)


def policy_export(*, policy_path: str, out: str) -> Path:
    """Write the merged model and tokenizer of the policy version at ``policy_path`` (relative to MODEL_STORE) into the new
    folder ``out``, loadable by transformers as it is; raise FileExistsError when ``out`` exists and is not empty."""
    from rm_trainer.export import export_merged

    return export_merged(version_folder(policy_path), out)
