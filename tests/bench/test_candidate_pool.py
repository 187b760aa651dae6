"""The candidate pool's split and cache key."""

from __future__ import annotations

import csv

from bench.candidate_pool import PoolSpec, read_requests, split_requests


def _csv(path, n: int) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["instruction", "intent", "category", "response"])
        writer.writerows([(f"request number {k}", f"intent_{k % 3}", "ORDER", f"reference {k}") for k in range(n)])
        writer.writerow(["request number 0", "intent_0", "ORDER", "a duplicate request"])
    return str(path)


def test_train_and_heldout_prompts_are_disjoint_and_reproducible(tmp_path):
    """The split takes distinct requests, never puts one on both sides, and is the same for the same seed."""
    spec = PoolSpec(data=_csv(tmp_path / "b.csv", 30), train_prompts=12, heldout_prompts=8)
    requests = read_requests(spec.data)
    train, heldout = split_requests(requests, spec)
    assert len(train) == 12 and len(heldout) == 8
    assert not {p for p, _ in train} & {p for p, _ in heldout}
    assert (train, heldout) == split_requests(requests, spec)
    assert all(intent.startswith("intent_") for _, intent in train + heldout)


def test_the_cache_key_follows_the_settings(tmp_path):
    """Two specs that would generate different pools get different keys."""
    data = _csv(tmp_path / "b.csv", 10)
    assert PoolSpec(data=data).key() == PoolSpec(data=data).key()
    assert PoolSpec(data=data).key() != PoolSpec(data=data, candidates=3).key()
