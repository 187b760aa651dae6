"""Warm heads: a fast fit that starts from the heads before it and replays a bounded sample of what they learned.

A cold fast fit trains its heads on every pair, so its cost grows with the history: one epoch
over 200,000 pairs takes half a minute of CPU, and early stopping runs several. Started from
the previous fast checkpoint's heads instead, a fit trains on the pairs those heads have not
learned and a random sample of at most ``FitConfig.replay_pairs`` of the rest, so that it does
not forget them: its cost depends on the new pairs and the bound, not on the history.

What the heads learned is known by content: every fast checkpoint keeps an 8-byte digest of
each pair it was given (``PAIRS_FILE``: id, texts, weight and margin to one decimal, tie). A pair
whose digest the warm checkpoint lacks is new, whether its comparison is new or its labels, its
verdict or its raters' weight changed. Learned pairs that are gone (an undo, an exclusion, a
rater whose labels no longer count) cannot be unlearned by training on the others; when more
than ``GONE_LIMIT`` of them are gone or changed, the fit goes cold on every pair.

A fit also stays cold until the warm heads have learned more than ``replay_pairs`` pairs (the
sample would be the whole history anyway), and when the warm checkpoint is not one of the same
frozen encoder, length and head shape, records no digests, or cannot be read; ``replay_plan``
says why. The validation split stays the fixed one, so the new pairs' and the sample's
validation pairs (about ``validation_fraction`` of each) measure the new heads and the baseline alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rm_trainer.config import FitConfig
from rm_trainer.data import PreferencePair, split_pairs
from rm_trainer.ensemble import HEADS_CONFIG, RewardEnsemble
from rm_trainer.pair_facts import pair_digests  # noqa: F401  (re-exported: what a checkpoint's PAIRS_FILE holds)
from rm_trainer.store import read_manifest

PAIRS_FILE = "pairs.npy"
GONE_LIMIT = 0.05  # more of the learned pairs gone or changed than this: a cold fit


@dataclass(frozen=True)
class ReplayPlan:
    """What a fast fit trains: ``pairs``, from ``init`` (None: cold), and ``record`` for its manifest."""

    pairs: Sequence[PreferencePair]
    init: RewardEnsemble | None
    record: dict[str, Any]


def replay_plan(pairs: Sequence[PreferencePair], digests: np.ndarray, warm: str | None, config: FitConfig, *, identity: str,
                dim: int) -> ReplayPlan:
    """Return what a fast fit of ``pairs`` (their ``pair_digests``) trains on with encoder ``identity`` (embeddings of ``dim``),
    starting from the checkpoint folder ``warm`` when it can."""
    if warm is None:
        return _cold(pairs, "no warm heads given")
    if not config.replay_pairs:
        return _cold(pairs, "replay_pairs is 0")
    try:
        manifest = read_manifest(warm)
        fast = manifest.get("tier") == "fast"
        shape = json.loads((Path(warm) / HEADS_CONFIG).read_text()) if fast else {}
        learned_digests = np.load(Path(warm) / PAIRS_FILE) if fast else None
    except FileNotFoundError as exc:
        return _cold(pairs, f"the warm checkpoint lacks {Path(exc.filename or '?').name} (written before warm heads, or damaged)")
    except (OSError, ValueError) as exc:
        return _cold(pairs, f"the warm checkpoint cannot be read ({type(exc).__name__}: {exc})")
    used_length = (manifest.get("hyperparameters") or {}).get("max_length")
    if not fast or manifest.get("backbone_identity") != identity or used_length != config.max_length:
        return _cold(pairs, "the warm checkpoint is not a fast one of this encoder and length")
    if (shape.get("members"), shape.get("dim"), shape.get("hidden")) != (config.ensemble_size, dim, config.head_hidden):
        return _cold(pairs, "the warm heads have another shape")
    known = np.isin(digests, learned_digests)
    learned, new = list(compress(pairs, known.tolist())), list(compress(pairs, (~known).tolist()))  # a step in C per pair, not in Python
    if len(learned) <= config.replay_pairs:
        return _cold(pairs, f"the warm heads learned {len(learned)} of these pairs, not more than replay_pairs ({config.replay_pairs})")
    gone = len(np.unique(learned_digests)) - len(np.unique(digests[known]))
    if gone > GONE_LIMIT * len(learned_digests):
        return _cold(pairs, f"{gone} of the {len(learned_digests)} pairs the warm heads learned are gone or changed (more than {GONE_LIMIT:.0%})")
    # a different sample each time the history grows, the same for the same pairs
    rng = np.random.default_rng([config.seed, len(pairs)])
    replayed = [learned[i] for i in np.sort(rng.choice(len(learned), config.replay_pairs, replace=False))]
    if not split_pairs(new + replayed, config.validation_fraction)[0]:
        return _cold(pairs, "every new and replayed pair fell into the validation split")
    try:
        init = RewardEnsemble.load(warm)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        return _cold(pairs, f"the warm heads cannot be loaded ({type(exc).__name__}: {exc})")
    record = {"warm_from": Path(warm).name, "new_pairs": len(new), "replayed": len(replayed), "learned_before": len(learned), "gone": gone}
    return ReplayPlan(pairs=new + replayed, init=init, record=record)


def _cold(pairs: Sequence[PreferencePair], why: str) -> ReplayPlan:
    return ReplayPlan(pairs=pairs, init=None, record={"warm_from": None, "why_cold": why})
