"""Best of n: the policy's rerank tier, n sampled replies per prompt and the one the reward model scores highest.

Reranking improves a policy without training it (the "best-of-n" baseline of Stiennon et al.
2020 and Nakano et al. 2021): the weights stay, the reward model chooses among their samples.
A reply that hit the token budget is cut off mid-sentence, so the best is chosen among the
complete replies whenever at least one is complete (the same rule as the supply's candidate pool).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rm_trainer.config import GenerationConfig
from rm_trainer.generator import Generator, PromptItem

# (prompt, its replies) -> one reward per reply
Scorer = Callable[[PromptItem, Sequence[str]], Sequence[float]]


@dataclass(frozen=True)
class BestOfN:
    """The reply chosen for one prompt: its text ("" when no sample was usable), reward, truncated flag, and how many replies competed."""

    text: str
    reward: float | None  # None when there was nothing to score
    truncated: bool
    n_candidates: int  # distinct non-empty replies scored (at most n)


def best_of_n(generator: Generator, items: Sequence[PromptItem], n: int, score: Scorer, config: GenerationConfig, *,
              should_stop: Callable[[], bool] | None = None) -> list[BestOfN]:
    """Return, per item in order, the best of ``n`` sampled replies by ``score`` (one batched sampling pass; ``should_stop``
    as the generator takes it).

    Exact duplicates and empty samples are dropped first, so fewer than ``n`` may compete; an item
    whose every sample was empty gets "" (and no reward). Among equal rewards the earlier sample wins.
    """
    if n < 1:
        raise ValueError(f"best of n needs n >= 1 samples per prompt, got {n}")
    result = generator.generate_with_stats(list(items), n, config, should_stop=should_stop)
    chosen = []
    for item, texts, flags in zip(items, result.texts, result.truncated):
        if not texts:
            chosen.append(BestOfN(text="", reward=None, truncated=False, n_candidates=0))
            continue
        rewards = [float(r) for r in score(item, texts)]
        if len(rewards) != len(texts):
            raise ValueError(f"the scorer gave {len(rewards)} rewards for {len(texts)} replies")
        pool = [k for k, cut in enumerate(flags) if not cut] or list(range(len(texts)))
        best = max(pool, key=rewards.__getitem__)
        chosen.append(BestOfN(text=texts[best], reward=rewards[best], truncated=flags[best], n_candidates=len(texts)))
    return chosen
