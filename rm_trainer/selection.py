"""Choose which two of a prompt's candidates raters should compare.

Input per prompt: the reward ensemble's rewards ``R`` of shape [K members, n candidates] and,
optionally, candidate embeddings [n, d]. Member k's probability that candidate i beats j is
``p_k(i, j) = σ(R[k, i] - R[k, j])``; ``p̄`` is their mean over members.

Every chosen pair carries the same ``score``, whatever the strategy, so that strategies can be
compared by how informative their pairs were:

    score(i, j) = H(p̄) - mean_k H(p_k)      (K ≥ 2; BALD, Houlsby et al. 2011)
    score(i, j) = H(p̄)                       (K = 1)

with H the binary entropy in nats. It is the mutual information between the label and the
ensemble member: high where the members disagree about the pair, and 0 where they agree, even
when they agree that it is a coin-flip (two near-identical replies, whose label teaches little).

Strategies (``SelectionConfig.strategy``):
- ``uncertain``: the pair of highest score. Across the batch, prompts are served in order of
  their best score, and a pair is skipped when its embedding difference ``e_i - e_j`` has
  |cosine| above ``config.diversity`` with that of a pair already chosen (the same contrast
  asked twice). When every pair of a prompt is redundant, the one least similar to the chosen
  ones is taken. Prompts without embeddings are not checked.
- ``thompson``: double Thompson sampling (Dwaracherla et al. 2024): sample a member, take its
  best candidate; sample members again until one's best candidate differs (at most
  ``config.extra["max_tries"]``, default 30, then the best other candidate by mean reward).
- ``best_vs_worst``: the candidates of highest and lowest mean reward.
- ``random``: two distinct candidates uniformly at random.

Random draws come from ``numpy.random.default_rng(config.seed)``, consumed prompt by prompt,
so the same inputs and seed give the same pairs. A prompt with fewer than two candidates gets
``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rm_trainer.config import SelectionConfig


@dataclass(frozen=True)
class SelectedPair:
    """The two candidates (indices into the prompt's list) to compare, and why."""

    i: int
    j: int
    score: float  # the BALD score of the pair (see the module docstring)
    p_i_wins: float  # the ensemble's mean probability that candidate i beats j
    strategy: str


def select_pairs(
    rewards: Sequence[np.ndarray],
    config: SelectionConfig,
    embeddings: Sequence[np.ndarray | None] | None = None,
) -> list[SelectedPair | None]:
    """Return one pair per prompt from its member rewards [K, n] (and embeddings [n, d])."""
    rewards = [np.atleast_2d(np.asarray(r, dtype=np.float64)) for r in rewards]
    if embeddings is not None and len(embeddings) != len(rewards):
        raise ValueError(f"got {len(embeddings)} embedding arrays for {len(rewards)} prompts")
    rng = np.random.default_rng(config.seed)
    if config.strategy == "uncertain":
        return _select_uncertain(rewards, embeddings, config.diversity)
    choose = {"thompson": _thompson, "best_vs_worst": _best_vs_worst, "random": _random}[config.strategy]
    max_tries = int(config.extra.get("max_tries", 30))
    chosen: list[SelectedPair | None] = []
    for r in rewards:
        if r.shape[1] < 2:
            chosen.append(None)
            continue
        i, j = choose(r, rng, max_tries)
        chosen.append(_pair(r, i, j, config.strategy))
    return chosen


def win_probabilities(rewards: np.ndarray) -> np.ndarray:
    """Return P[k, i, j] = σ(R[k, i] - R[k, j]) for member rewards R [K, n]."""
    diff = rewards[:, :, None] - rewards[:, None, :]
    return 1.0 / (1.0 + np.exp(-diff))


def pair_scores(rewards: np.ndarray) -> np.ndarray:
    """Return the [n, n] BALD scores of every pair (symmetric; the diagonal is 0)."""
    p = win_probabilities(np.atleast_2d(rewards))
    total = _entropy(p.mean(axis=0))
    if p.shape[0] == 1:
        return total
    return np.maximum(total - _entropy(p).mean(axis=0), 0.0)


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def _pair(rewards: np.ndarray, i: int, j: int, strategy: str) -> SelectedPair:
    p = win_probabilities(rewards[:, [i, j]])[:, 0, 1].mean()
    return SelectedPair(i=int(i), j=int(j), score=float(pair_scores(rewards[:, [i, j]])[0, 1]), p_i_wins=float(p), strategy=strategy)


def _thompson(rewards: np.ndarray, rng: np.random.Generator, max_tries: int) -> tuple[int, int]:
    members = rewards.shape[0]
    first = int(np.argmax(rewards[rng.integers(members)]))
    for _ in range(max_tries):
        second = int(np.argmax(rewards[rng.integers(members)]))
        if second != first:
            return first, second
    mean = rewards.mean(axis=0).copy()
    mean[first] = -np.inf
    return first, int(np.argmax(mean))


def _best_vs_worst(rewards: np.ndarray, rng: np.random.Generator, max_tries: int) -> tuple[int, int]:
    mean = rewards.mean(axis=0)
    best, worst = int(np.argmax(mean)), int(np.argmin(mean))
    if best == worst:  # all equal
        worst = 1 if best == 0 else 0
    return best, worst


def _random(rewards: np.ndarray, rng: np.random.Generator, max_tries: int) -> tuple[int, int]:
    i, j = rng.choice(rewards.shape[1], size=2, replace=False)
    return int(i), int(j)


def _select_uncertain(
    rewards: list[np.ndarray], embeddings: Sequence[np.ndarray | None] | None, diversity: float,
) -> list[SelectedPair | None]:
    ranked: list[list[tuple[int, int]]] = []
    best: list[float] = []
    for r in rewards:
        scores = pair_scores(r)
        i, j = np.triu_indices(r.shape[1], k=1)
        order = np.argsort(-scores[i, j], kind="stable")  # ties keep the lowest indices first
        ranked.append([(int(i[k]), int(j[k])) for k in order])
        best.append(float(scores[i[order[0]], j[order[0]]]) if len(order) else -np.inf)
    chosen: list[SelectedPair | None] = [None] * len(rewards)
    directions: list[np.ndarray] = []
    for prompt in np.argsort(-np.asarray(best), kind="stable"):
        pairs = ranked[prompt]
        if not pairs:
            continue
        emb = None if embeddings is None or embeddings[prompt] is None else np.asarray(embeddings[prompt], dtype=np.float64)
        i, j = pairs[0] if emb is None else _first_novel(pairs, emb, directions, diversity)
        if emb is not None:
            directions.append(_unit(emb[i] - emb[j]))
        chosen[prompt] = _pair(rewards[prompt], i, j, "uncertain")
    return chosen


def _first_novel(pairs: list[tuple[int, int]], emb: np.ndarray, directions: list[np.ndarray], diversity: float) -> tuple[int, int]:
    """Return the first pair whose contrast is not redundant with ``directions``, else the least redundant."""
    if not directions:
        return pairs[0]
    taken = np.stack(directions)
    least, least_similarity = pairs[0], np.inf
    for i, j in pairs:
        similarity = float(np.abs(taken @ _unit(emb[i] - emb[j])).max())
        if similarity <= diversity:
            return i, j
        if similarity < least_similarity:
            least, least_similarity = (i, j), similarity
    return least


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v
