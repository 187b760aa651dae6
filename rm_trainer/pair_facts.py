"""What a fit works out per pair before it trains: a digest of each pair's content and its side of the validation split.

A caller that keeps its pairs between fits (the studio's worker keeps them per comparison) keeps
these too and hands them to ``train.fit`` as ``PairFacts``, so that a fit's cost before it trains
follows the pairs that changed, not the history. No torch here: a web process may import it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rm_trainer.data import PreferencePair, is_validation


@dataclass(frozen=True)
class PairFacts:
    """What a caller that keeps its pairs between fits knows of each already, so that a fit need not work it out per pair:
    its ``pair_digests`` and whether it falls into the validation split of ``fraction``."""

    digests: np.ndarray  # uint64 [n]
    validation: np.ndarray  # bool [n]
    fraction: float

    def __post_init__(self) -> None:
        if len(self.digests) != len(self.validation):
            raise ValueError(f"PairFacts: {len(self.digests)} digests but {len(self.validation)} validation flags")


def pair_facts(pairs: Sequence[PreferencePair], fraction: float) -> PairFacts:
    """Return the ``PairFacts`` of ``pairs`` for the validation split of ``fraction``."""
    validation = np.fromiter((is_validation(p.split_key or p.pair_id, fraction) for p in pairs), dtype=bool, count=len(pairs))
    return PairFacts(pair_digests(pairs), validation, fraction)


def pair_digests(pairs: Sequence[PreferencePair]) -> np.ndarray:
    """Return an 8-byte digest [n] of each pair's content; weight and margin count to one decimal (trust drifts)."""
    digests = np.empty(len(pairs), dtype=np.uint64)
    for i, p in enumerate(pairs):
        text = "\x1f".join((p.pair_id, p.split_key, p.prompt, p.chosen, p.rejected, f"{p.weight:.1f}", f"{p.margin:.1f}", str(p.tie)))
        digests[i] = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
    return digests
