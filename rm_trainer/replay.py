"""Warm heads: a fast fit that starts from the heads before it and replays a bounded sample of what they learned.

A cold fast fit trains its heads on every pair, so its cost grows with the history: one epoch
over 200,000 pairs takes half a minute of CPU, and early stopping runs several. Started from
the previous fast checkpoint's heads instead, a fit trains on the pairs those heads have not
learned (named by the caller, as the groups of ``pair_group``) and a random sample of at most
``FitConfig.replay_pairs`` of the rest, so that it does not forget them: its cost depends on
the new pairs and the bound, not on the history. The validation split stays the fixed one, so
the sample's validation pairs measure the new heads and the baseline alike.

Until the warm heads have learned more than ``replay_pairs`` pairs a fit stays cold on every
pair, exactly as without them: a bounded sample would be the whole history anyway. A fit also
stays cold when the warm checkpoint is not one of the same frozen encoder, length and head
shape (a full-tier checkpoint, another backbone, another ensemble size); ``replay_plan`` says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rm_trainer.config import FitConfig
from rm_trainer.data import PreferencePair
from rm_trainer.ensemble import HEADS_CONFIG, RewardEnsemble
from rm_trainer.store import read_manifest


@dataclass(frozen=True)
class WarmHeads:
    """A fast checkpoint whose heads may start a fit, and the groups of the pairs it has not learned."""

    folder: str
    new_groups: frozenset[str]  # ``pair_group`` of every pair that is new to these heads (or changed since)


@dataclass(frozen=True)
class ReplayPlan:
    """What a fast fit trains: ``pairs``, from ``init`` (None: cold), and ``record`` for its manifest."""

    pairs: Sequence[PreferencePair]
    init: RewardEnsemble | None
    record: dict[str, Any]


def pair_group(pair: PreferencePair) -> str:
    """Return the key that names a pair's source (its comparison): its split key, or its own id."""
    return pair.split_key or pair.pair_id


def replay_plan(pairs: Sequence[PreferencePair], warm: WarmHeads | None, config: FitConfig, *, identity: str, dim: int) -> ReplayPlan:
    """Return what a fast fit of ``pairs`` trains on with encoder ``identity`` (embeddings of ``dim``), given ``warm``."""
    if warm is None:
        return _cold(pairs, "no warm heads given")
    if not config.replay_pairs:
        return _cold(pairs, "replay_pairs is 0")
    try:
        manifest = read_manifest(warm.folder)
        shape = json.loads((Path(warm.folder) / HEADS_CONFIG).read_text()) if manifest.get("tier") == "fast" else {}
    except (OSError, ValueError) as exc:
        return _cold(pairs, f"the warm checkpoint cannot be read ({type(exc).__name__}: {exc})")
    used_length = (manifest.get("hyperparameters") or {}).get("max_length")
    if manifest.get("tier") != "fast" or manifest.get("backbone_identity") != identity or used_length != config.max_length:
        return _cold(pairs, "the warm checkpoint is not a fast one of this encoder and length")
    if (shape["members"], shape["dim"], shape["hidden"]) != (config.ensemble_size, dim, config.head_hidden):
        return _cold(pairs, "the warm heads have another shape")
    new = [p for p in pairs if pair_group(p) in warm.new_groups]
    learned = [p for p in pairs if pair_group(p) not in warm.new_groups]
    if len(learned) <= config.replay_pairs:
        return _cold(pairs, f"the warm heads learned {len(learned)} pairs, not more than replay_pairs ({config.replay_pairs})")
    # a different sample each time the history grows, the same for the same pairs
    rng = np.random.default_rng([config.seed, len(pairs)])
    replayed = [learned[i] for i in np.sort(rng.choice(len(learned), config.replay_pairs, replace=False))]
    record = {"warm_from": Path(warm.folder).name, "new_pairs": len(new), "replayed": len(replayed), "learned_before": len(learned)}
    return ReplayPlan(pairs=new + replayed, init=RewardEnsemble.load(warm.folder), record=record)


def _cold(pairs: Sequence[PreferencePair], why: str) -> ReplayPlan:
    return ReplayPlan(pairs=pairs, init=None, record={"warm_from": None, "why_cold": why})
