"""The models one process has loaded, by version name: a swap loads new weights, old holders finish with theirs.

A caller passes the version it wants (the active one, read from the database just before); a new
name loads new weights while work already holding the old objects finishes with them. That is how
a swap reaches every process without a restart. Workers keep one holder per process (see
``feedback_app.tasks``); anything else makes its own, which loads afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from django.conf import settings

from feedback_app.training_bridge.store import embedding_cache_dir, version_folder

if TYPE_CHECKING:
    from rm_trainer.embeddings import EmbeddingCache, EncoderCache
    from rm_trainer.generator import Generator
    from rm_trainer.scorer import RewardScorer

MAX_GENERATORS = 2  # the active policy and, for arena comparisons, an earlier one
MAX_SCORERS = 4  # the active reward models of the campaigns a worker serves in turn (they share the encoders)


class ModelHolder:
    """The reward scorer and generators of one process, by version name; nothing loads until asked."""

    def __init__(self) -> None:
        self._encoders: EncoderCache | None = None
        self._scorers: OrderedDict[str, RewardScorer] = OrderedDict()
        self._embedding_caches: dict[tuple[str, int], EmbeddingCache] = {}
        self._generators: OrderedDict[str, Generator] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def encoders(self) -> EncoderCache:
        """Return the frozen encoders this process keeps loaded between fits and scorers."""
        with self._lock:
            if self._encoders is None:
                from rm_trainer.embeddings import EncoderCache

                _torch_threads_set()
                self._encoders = EncoderCache()
            return self._encoders

    def scorer(self, name: str, path: str) -> RewardScorer:
        """Return the scorer of reward version ``name``, loading it (and dropping the least recent beyond
        MAX_SCORERS: each campaign has its own active reward model) if this holder does not have it.

        Serving scorers embed without the on-disk cache: most texts they see are new, and
        every call would otherwise leave a small shard behind.
        """
        from rm_trainer.scorer import RewardScorer

        with self._lock:
            if name not in self._scorers:
                while len(self._scorers) >= MAX_SCORERS:
                    self._scorers.popitem(last=False)
                self._scorers[name] = RewardScorer.load(version_folder(path), device=settings.TRAINING_DEVICE, encoders=self.encoders)
            self._scorers.move_to_end(name)
            return self._scorers[name]

    def batch_scorer(self, name: str, path: str) -> RewardScorer:
        """Return ``scorer(name, path)`` reading and filling the on-disk embedding cache.

        For batch jobs over texts the fits see too (labelled and arena comparisons): the fits
        embedded most of them already, and the ones embedded here the next fit reuses.
        """
        from rm_trainer.embeddings import EmbeddingCache

        scorer = self.scorer(name, path)
        key = (scorer.encoder.identity, scorer.max_length)
        with self._lock:
            if key not in self._embedding_caches:  # one index per holder, refreshed on each use
                self._embedding_caches[key] = EmbeddingCache(embedding_cache_dir(), identity=key[0], max_length=key[1])
            return scorer.with_embedding_cache(self._embedding_caches[key])

    def generator(self, name: str, path: str) -> Generator:
        """Return the generator of policy version ``name``, loading it (and dropping the least recent
        beyond MAX_GENERATORS) if this holder does not have it."""
        from rm_trainer.generator import Generator

        with self._lock:
            if name in self._generators:
                self._generators.move_to_end(name)
                return self._generators[name]
            _torch_threads_set()
            while len(self._generators) >= MAX_GENERATORS:
                self._generators.popitem(last=False)  # free old weights before loading new ones
            self._generators[name] = Generator.load(version_folder(path), device=settings.TRAINING_DEVICE)
            return self._generators[name]

    def judge_generator(self, folder: str) -> Generator:
        """Return the local judge's chat model from ``folder`` (JUDGE_MODEL, outside the store), kept like a policy."""
        from rm_trainer.generator import Generator

        key = f"judge:{folder}"
        with self._lock:
            if key not in self._generators:
                _torch_threads_set()
                while len(self._generators) >= MAX_GENERATORS:
                    self._generators.popitem(last=False)
                self._generators[key] = Generator.load(folder, device=settings.TRAINING_DEVICE)
            self._generators.move_to_end(key)
            return self._generators[key]

    def generator_unkept(self, path: str) -> Generator:
        """Load the generator at ``path`` without keeping it (a candidate policy being judged once)."""
        from rm_trainer.generator import Generator

        _torch_threads_set()
        return Generator.load(version_folder(path), device=settings.TRAINING_DEVICE)


def libraries_import() -> list[str]:
    """Import the learning libraries and the reward backbone's model class, running nothing (``rm_trainer.preload``):
    for a worker before its pool forks. Return the model classes imported."""
    from rm_trainer.preload import libraries_import

    from feedback_app.training_bridge.sources import reward_backbone

    return libraries_import([reward_backbone()])


def _torch_threads_set() -> None:
    """Apply TORCH_THREADS (when set) before the first model loads."""
    if settings.TORCH_THREADS:
        import torch

        torch.set_num_threads(settings.TORCH_THREADS)
