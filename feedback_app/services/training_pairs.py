"""The pairs a reward refit learns from, kept per comparison: each refit rebuilds only the comparisons whose pairs changed.

``training_data`` keeps the labels of completed comparisons in the worker (they no longer change).
Aggregating them into pairs (``training_bridge.preference_pairs``), with a digest and a side of the
validation split per pair (``training_bridge.pair_facts``), cost about 16 µs a label every refit,
over the whole history. Here a worker keeps, beside the kept labels and for as long as they are
kept, each completed comparison's pairs and their facts, and what they were made with: the raters'
and the judge versions' weights and the admins' verdicts. A refit rebuilds a comparison's pairs
when it was added or completed again since, when a rater or judge version among its labels now
weighs otherwise, or when its verdict changed; the rest it takes as they are.

What ``training_data`` reads live (open comparisons, the last minute's, the gold pairs) is
aggregated afresh each refit, and so are kept comparisons that a bounded read cuts (labels after
its bound): those are few. The pairs come out exactly as ``preference_pairs`` of
``labels_for_training`` would make them, in the same order.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from feedback_app import training_bridge
from feedback_app.models import DEFAULT_CAMPAIGN_ID
from feedback_app.services.training_data import ORDER, TrainingLabel, TrainingParts, training_parts

logger = logging.getLogger(__name__)
_lock = threading.Lock()

@dataclass
class TrainingPairs:
    """A refit's pairs (``preference_pairs`` of its labels, in order), their ``pair_facts`` and the labels' range."""

    pairs: list
    facts: object  # rm_trainer.pair_facts.PairFacts
    data_range: dict


@dataclass
class _Table:
    """Rows in ascending key order (rows may share a key) as numpy columns, and optionally a list of objects beside them: filtered
    and merged a copy in C, with a Python step only per row merged in."""

    keys: np.ndarray
    cols: dict
    objects: list | None = None

    @classmethod
    def of(cls, keys, cols: dict, objects: list | None = None) -> _Table:
        return cls(np.array(keys, dtype=np.int64), {name: np.array(values, dtype=dtype) for name, (values, dtype) in cols.items()}, objects)

    def without(self, keys: np.ndarray) -> _Table:
        """Return the table without the rows of ``keys``."""
        drop = np.isin(self.keys, keys)
        if not drop.any():
            return self
        keep = ~drop
        objects = None if self.objects is None else list(itertools.compress(self.objects, keep.tolist()))
        return _Table(self.keys[keep], {name: col[keep] for name, col in self.cols.items()}, objects)

    def merged(self, other: _Table) -> _Table:
        """Return the table with ``other``'s rows (of keys it lacks; in order) merged in."""
        if not len(other.keys):
            return self
        at = np.searchsorted(self.keys, other.keys)
        objects = None
        if self.objects is not None:
            objects, start = [], 0
            for position, item in zip(at.tolist(), other.objects):
                objects += self.objects[start:position]
                objects.append(item)
                start = position
            objects += self.objects[start:]
        return _Table(np.insert(self.keys, at, other.keys), {name: np.insert(col, at, other.cols[name]) for name, col in self.cols.items()},
                      objects)


def _comparisons(ids=(), tops=(), counts=(), prompts=()) -> _Table:
    """Kept comparisons: their largest label id, labels and prompt."""
    return _Table.of(ids, {"top": (tops, np.int64), "count": (counts, np.int64), "prompt": (prompts, np.int64)})


def _pairs(cids=(), pairs=(), digests=(), validation=()) -> _Table:
    """Pairs by comparison, with their facts."""
    return _Table.of(cids, {"digest": (digests, np.uint64), "validation": (validation, bool)}, list(pairs))


@dataclass
class _Memo:
    """One campaign's kept comparisons' pairs as one worker holds them, and what they were made with."""

    key: tuple  # the strength margins and validation fraction they were made with: another clears them
    synced: int = 0  # how many of the kept data's ``changed`` comparisons are made
    weights: dict = field(default_factory=dict)
    ai_weights: dict = field(default_factory=dict)
    verdicts: dict = field(default_factory=dict)
    comparisons: _Table = field(default_factory=_comparisons)
    pairs: _Table = field(default_factory=_pairs)
    by_rater: dict = field(default_factory=lambda: defaultdict(set))  # rater id -> the comparisons their labels are in
    by_judge: dict = field(default_factory=lambda: defaultdict(set))  # judge version id -> the same


def pairs_for_training(
    *, campaign_id: int = DEFAULT_CAMPAIGN_ID, through_label_id: int | None = None, exclude_prompt_ids: list[int] | None = None,
    weights: dict[int, float] | None = None, verdicts: dict[int, str] | None = None, ai_weights: dict[int, float] | None = None,
    purpose: str = "reward",
) -> TrainingPairs:
    """Return ``preference_pairs`` of ``labels_for_training(campaign_id=…, through_label_id=…, exclude_prompt_ids=…)`` with
    these weights and verdicts, their facts and the range (``labels_for_training``'s), rebuilding only the kept comparisons that
    changed. ``purpose`` ("reward", "policy"): each keeps its own pairs (their AI labels weigh otherwise)."""
    if purpose not in ("reward", "policy"):
        raise ValueError(f"purpose must be reward or policy, got {purpose!r}")
    weights, verdicts, ai_weights = dict(weights or {}), dict(verdicts or {}), dict(ai_weights or {})
    parts = training_parts(campaign_id=campaign_id, through_label_id=through_label_id)
    if parts is None:
        return TrainingPairs([], training_bridge.pair_facts([]), {"first_label_id": None, "last_label_id": None, "n_labels": 0})
    made = {"weights": weights, "verdicts": verdicts, "ai_weights": ai_weights}
    left_out, reopened, held_out = set(parts.left_out), set(parts.reopened), set(exclude_prompt_ids or ())
    rest = [label for label in parts.live if label.comparison.pk not in left_out]  # made afresh
    with _lock:
        table, n_labels, remade = _pairs(), 0, 0
        if parts.kept is not None:
            try:
                memo, cut, remade = _synced(parts, made, purpose)
            except BaseException:
                parts.kept.pairs.pop(purpose, None)  # half made: made anew by the next run
                raise
            comparisons = memo.comparisons
            removed = np.array(sorted(left_out | reopened | set(cut)), dtype=np.int64)
            if held_out:
                removed = np.union1d(removed, comparisons.keys[np.isin(comparisons.cols["prompt"], list(held_out))])
            n_labels = int(comparisons.cols["count"][~np.isin(comparisons.keys, removed)].sum())
            table = memo.pairs.without(removed)
            labels = parts.labels
            gold = parts.kept_labels([label for cid in parts.gold_ids for label in _span(labels, cid)])  # undone ones left out of all
            rest += [label for label in gold if label.comparison.pk not in left_out and (not parts.bounded or label.pk <= parts.last)]
            rest += [label for cid in cut if cid not in left_out and cid not in reopened for label in _span(labels, cid) if label.pk <= parts.last]
        rest = sorted((label for label in rest if label.comparison.prompt_id not in held_out), key=ORDER)
        table = table.merged(_rows(rest, made))
    logger.info("campaign %s %s pairs: %d from %d labels; %d kept comparisons made anew, %d labels (live or gold) made afresh", campaign_id, purpose,
                len(table.keys), n_labels + len(rest), remade, len(rest))
    facts = training_bridge.pair_facts_kept(table.cols["digest"], table.cols["validation"])
    return TrainingPairs(list(table.objects), facts, {"first_label_id": parts.first, "last_label_id": parts.last, "n_labels": n_labels + len(rest)})


def _synced(parts: TrainingParts, made: dict, purpose: str) -> tuple[_Memo, list[int], int]:
    """Return the kept data's memo for ``purpose`` with every changed comparison rebuilt, the kept comparisons a bounded read
    cuts, and how many were rebuilt."""
    kept = parts.kept
    key = (tuple(settings.STRENGTH_MARGINS), training_bridge.reward_validation_fraction())
    memo = kept.pairs.get(purpose)
    # made anew with other margins, or when made from a later read of the kept data than this run's (another thread's)
    if memo is None or memo.key != key or memo.synced > parts.changed:
        memo = kept.pairs[purpose] = _Memo(key=key)
    dirty = set(kept.changed[memo.synced:parts.changed])
    memo.synced = parts.changed
    for name, index, default in (("weights", memo.by_rater, 1.0), ("ai_weights", memo.by_judge, 0.0)):
        old, new = getattr(memo, name), made[name]
        for who in old.keys() | new.keys():
            if old.get(who, default) != new.get(who, default):
                dirty |= index.get(who, set())
    old, new = memo.verdicts, made["verdicts"]
    dirty |= {cid for cid in old.keys() | new.keys() if old.get(cid) != new.get(cid)}
    memo.weights, memo.ai_weights, memo.verdicts = made["weights"], made["ai_weights"], made["verdicts"]
    dirty &= kept.comparisons
    if dirty:
        _rebuild(memo, parts.labels, sorted(dirty), made)
    cut = []
    if parts.bounded:
        comparisons = memo.comparisons
        cut = comparisons.keys[comparisons.cols["top"] > parts.last].tolist()
    return memo, cut, len(dirty)


def _rebuild(memo: _Memo, labels: list[TrainingLabel], cids: list[int], made: dict) -> None:
    """Make the pairs of kept comparisons ``cids`` (ascending) anew from the kept ``labels``."""
    spans = [_span(labels, cid) for cid in cids]
    ids = np.array(cids, dtype=np.int64)
    made_anew = _comparisons(cids, [max((label.pk for label in labels), default=0) for labels in spans], [len(labels) for labels in spans],
                             [labels[0].comparison.prompt_id if labels else 0 for labels in spans])
    memo.comparisons = memo.comparisons.without(ids).merged(made_anew)
    memo.pairs = memo.pairs.without(ids).merged(_rows([label for labels in spans for label in labels], made))
    for cid, labels in zip(cids, spans):
        for label in labels:
            memo.by_rater[label.rater_id].add(cid)
            if label.judge_version_id is not None:
                memo.by_judge[label.judge_version_id].add(cid)


def _rows(labels: list[TrainingLabel], made: dict) -> _Table:
    """Return the pairs ``preference_pairs`` makes of ``labels`` (in order), comparison by comparison, with their facts."""
    cids, pairs = [], []
    for cid, group in itertools.groupby(labels, key=lambda label: label.comparison.pk):
        made_here = training_bridge.preference_pairs(group, **made)
        cids += [cid] * len(made_here)
        pairs += made_here
    facts = training_bridge.pair_facts(pairs)
    return _pairs(cids, pairs, facts.digests, facts.validation)


def _span(labels: list[TrainingLabel], cid: int) -> list[TrainingLabel]:
    """Return the labels of comparison ``cid`` in ``labels`` (in order)."""
    first = bisect.bisect_left(labels, (cid, 0), key=ORDER)
    return labels[first:bisect.bisect_left(labels, (cid + 1, 0), lo=first, key=ORDER)]
