"""Score responses with a reward checkpoint written by ``rm_trainer.train.fit``.

A fast-tier checkpoint holds only its ensemble heads and names its frozen backbone; a full-tier
one also holds its fine-tuned encoder. Pass one ``EncoderCache`` to every load in a process, so
that swapping between fast-tier versions on the same backbone loads only their small heads.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rm_trainer.embeddings import EmbeddingCache, EncoderCache, PairEncoder, embed_cached
from rm_trainer.ensemble import RewardEnsemble
from rm_trainer.store import read_manifest

ENCODER_FOLDER = "encoder"
Item = tuple[str, Sequence[str]]  # (prompt, responses)


class RewardScorer:
    """Rewards, per-member rewards and embeddings of responses to a prompt."""

    def __init__(
        self,
        encoder: PairEncoder,
        ensemble: RewardEnsemble,
        *,
        max_length: int,
        manifest: dict[str, Any] | None = None,
        embedding_cache: EmbeddingCache | None = None,
    ) -> None:
        self.encoder = encoder
        self.ensemble = ensemble.to(encoder.device).eval()
        self.max_length = max_length
        self.manifest = manifest or {}
        self.embedding_cache = embedding_cache

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        device: str = "auto",
        *,
        encoders: EncoderCache | None = None,
        backbone: str | None = None,
        bf16: bool = True,
    ) -> RewardScorer:
        """Return the scorer of the checkpoint in ``folder``.

        ``backbone`` overrides the backbone folder a fast-tier manifest names (where the same
        weights live at another path on this machine).
        """
        manifest = read_manifest(folder)
        if manifest["tier"] == "full":
            encoder_folder = Path(folder) / ENCODER_FOLDER
        else:
            encoder_folder = Path(backbone or manifest["backbone"])
        encoders = encoders if encoders is not None else EncoderCache()
        encoder = encoders.get(encoder_folder, device=device, bf16=bf16)
        ensemble = RewardEnsemble.load(folder, device=encoder.device)
        return cls(encoder, ensemble, max_length=manifest["hyperparameters"]["max_length"], manifest=manifest)

    @property
    def name(self) -> str | None:
        return self.manifest.get("name")

    def with_embedding_cache(self, cache: EmbeddingCache | None) -> RewardScorer:
        """Return this scorer (same encoder and heads, nothing copied) reading and filling ``cache``.

        Only a fast-tier scorer embeds like the fits do (the frozen backbone); a fine-tuned
        encoder would fill the cache with vectors no fit reads, so it gets no cache.
        """
        scorer = copy.copy(self)
        scorer.embedding_cache = cache if self.manifest.get("tier") != "full" else None
        return scorer

    @property
    def members(self) -> int:
        return self.ensemble.members

    def embed(self, prompt: str, responses: Sequence[str]) -> np.ndarray:
        """Return the pooled embeddings [n, dim] of the responses to ``prompt``."""
        return self.embed_batch([(prompt, responses)])[0]

    def member_rewards(self, prompt: str, responses: Sequence[str]) -> np.ndarray:
        """Return the reward of every ensemble member for each response, shape [K, n]."""
        return self.member_rewards_batch([(prompt, responses)])[0]

    def score(self, prompt: str, responses: Sequence[str]) -> list[float]:
        """Return the reward (the ensemble mean) of each response to ``prompt``."""
        return self.score_batch([(prompt, responses)])[0]

    def embed_batch(self, items: Sequence[Item]) -> list[np.ndarray]:
        """Return ``embed`` for many (prompt, responses) items, encoded in one pass."""
        prompts = [prompt for prompt, responses in items for _ in responses]
        responses = [response for _, responses in items for response in responses]
        if self.embedding_cache is not None and self.embedding_cache.max_length == self.max_length:
            flat = embed_cached(self.encoder, self.embedding_cache, prompts, responses)
        else:
            flat = self.encoder.embed(prompts, responses, max_length=self.max_length)
        return _unflatten(flat, items, axis=0)

    def member_rewards_batch(self, items: Sequence[Item]) -> list[np.ndarray]:
        """Return ``member_rewards`` for many (prompt, responses) items."""
        return self.rewards_and_embeddings_batch(items)[0]

    def score_batch(self, items: Sequence[Item]) -> list[list[float]]:
        """Return ``score`` for many (prompt, responses) items."""
        return [rewards.mean(0).tolist() for rewards in self.member_rewards_batch(items)]

    def pair_probabilities_batch(self, items: Sequence[tuple[str, str, str]]) -> list[tuple[float, float]]:
        """Return, per (prompt, a, b), the ensemble's P(a beats b) and the standard deviation of its members' P.

        P is σ(mean reward of a − mean reward of b); each member's P is σ of its own reward gap, and
        their spread says how far the members disagree.
        """
        rewards = self.member_rewards_batch([(prompt, [a, b]) for prompt, a, b in items])
        result = []
        for member in rewards:  # [K, 2]
            gaps = (member[:, 0] - member[:, 1]).astype(np.float64)
            members = 1.0 / (1.0 + np.exp(-gaps))
            result.append((float(1.0 / (1.0 + np.exp(-gaps.mean()))), float(members.std())))
        return result

    def rewards_and_embeddings_batch(self, items: Sequence[Item]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Return (member rewards [K, n], embeddings [n, dim]) per item, embedding each text once."""
        embeddings = self.embed_batch(items)
        flat = np.concatenate(embeddings) if embeddings else np.empty((0, self.encoder.dim), np.float32)
        rewards = self.ensemble.member_rewards(flat)
        return _unflatten(rewards, items, axis=1), embeddings


def _unflatten(flat: np.ndarray, items: Sequence[Item], axis: int) -> list[np.ndarray]:
    if not items:
        return []
    bounds = np.cumsum([len(responses) for _, responses in items])[:-1]
    return np.split(flat, bounds, axis=axis)
