"""Warm heads with a bounded replay against a cold fit on every pair: held-out accuracy, and the heads' cost as history grows.

Run from the project root:

    .venv/bin/python -m bench.heads_replay --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz --json bench/out.json

Part one, real data (``--data``): the pairs are split once into a held-out test set and a stream, which arrives in chunks as
labels arrive at a studio. After each chunk two lines of versions are fitted through ``rm_trainer.train.fit`` with the frozen
encoder: cold (every pair seen so far, as before warm heads) and warm (from that line's previous version: the pairs it has not
learned and at most ``--replay`` of the rest, as ``rm_trainer.replay`` does in the studio with REWARD_HEADS_REPLAY).
Every text is embedded once before the fits, so a fit's CPU time is its heads and its bookkeeping. Accuracy is the ensemble's
on the held-out pairs, which no fit sees. ``--orders`` repeats the stream in other orders.

Part two, cost at a studio's size (``--sizes``): the heads alone (``fit_ensemble``) on synthetic embeddings of the encoder's
width whose preference a hidden linear score decides, a cold fit on N + ``--new`` pairs against a warm fit on the ``--new``
pairs and ``--scale-replay`` of the N, both from the process's own CPU accounting.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.reward_accuracy import read_pairs, split
from rm_trainer.config import FitConfig, default_reward_backbone
from rm_trainer.embeddings import EmbeddingCache, EncoderCache, embed_cached
from rm_trainer.ensemble import RewardEnsemble, fit_ensemble
from rm_trainer.evaluate import pairwise_metrics
from rm_trainer.store import CheckpointStore
from rm_trainer.train import fit


def stream_runs(pairs, args, order_seed: int, workdir: Path, encoders: EncoderCache) -> list[dict]:
    """Fit the cold and the warm line after each chunk of one stream order; return a row per chunk."""
    stream, test = split(pairs, len(pairs) - args.test_size, args.test_size, args.seed)
    stream = [stream[i] for i in np.random.default_rng(order_seed).permutation(len(stream))]
    config = FitConfig(backbone=args.backbone, replay_pairs=args.replay, embedding_cache_dir=str(workdir / "cache"), device="cpu")
    encoder = encoders.get(config.backbone, device="cpu", bf16=config.bf16)
    cache = EmbeddingCache(config.embedding_cache_dir, identity=encoder.identity, max_length=config.max_length)
    test_chosen = embed_cached(encoder, cache, [p.prompt for p in test], [p.chosen for p in test])
    test_rejected = embed_cached(encoder, cache, [p.prompt for p in test], [p.rejected for p in test])
    embed_cached(encoder, cache, [p.prompt for p in stream] * 2, [p.chosen for p in stream] + [p.rejected for p in stream])
    store = CheckpointStore(workdir / f"store-{order_seed}")
    rows, warm_path = [], None
    for step, end in enumerate(range(args.chunk, len(stream) + 1, args.chunk), start=1):
        seen = stream[:end]
        row = {"order": order_seed, "step": step, "pairs": len(seen)}
        for line in ("cold", "warm"):
            warm = warm_path if line == "warm" else None
            started = time.process_time()
            result = fit(seen, config, store=store, name=f"{line}-{step}", encoders=encoders, warm_heads=warm)
            cpu = time.process_time() - started
            heads = RewardEnsemble.load(result.path)
            diffs = heads.member_rewards(test_chosen).mean(0) - heads.member_rewards(test_rejected).mean(0)
            row[line] = {"accuracy": round(pairwise_metrics(diffs, [p.tie for p in test])["accuracy"], 4),
                         "trained": result.n_train, "epochs": result.manifest["heads"]["epochs"], "cpu_s": round(cpu, 2),
                         "warm_from": result.manifest["replay"]["warm_from"]}
            if line == "warm":
                warm_path = result.path
        rows.append(row)
        print(f"order {order_seed} step {step}: {len(seen)} pairs | cold acc {row['cold']['accuracy']:.3f} "
              f"{row['cold']['trained']} trained {row['cold']['epochs']} ep {row['cold']['cpu_s']:.1f} s | warm acc "
              f"{row['warm']['accuracy']:.3f} {row['warm']['trained']} trained {row['warm']['epochs']} ep {row['warm']['cpu_s']:.1f} s"
              f" (from {row['warm']['warm_from']})", flush=True)
    return rows


def synthetic_task(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (chosen, rejected) [n, dim]: a hidden linear score, a little noise, prefers chosen."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(1_000).normal(size=dim)
    a, b = rng.normal(size=(n, dim)).astype(np.float32), rng.normal(size=(n, dim)).astype(np.float32)
    a_wins = ((a - b) @ w + rng.normal(scale=2.0, size=n) > 0)[:, None]
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def scale_runs(args) -> list[dict]:
    """Time the heads cold on N + new pairs and warm on new + a bounded replay, for each N of ``--sizes``."""
    dim, largest = 384, max(args.sizes) + args.new
    chosen, rejected = synthetic_task(largest + 5_000, dim, args.seed)
    test_c, test_r = chosen[largest:], rejected[largest:]

    def heads(c, r, init=None):
        started_cpu, started = time.process_time(), time.perf_counter()
        ensemble = fit_ensemble(c, r, members=5, hidden=256, init=init, seed=args.seed)
        accuracy = float(((ensemble.member_rewards(test_c) - ensemble.member_rewards(test_r)).mean(0) > 0).mean())
        return ensemble, {"cpu_s": round(time.process_time() - started_cpu, 1), "wall_s": round(time.perf_counter() - started, 1),
                          "epochs": ensemble.history["epochs"], "accuracy": round(accuracy, 4), "trained": len(c)}

    rows = []
    for n in sorted(args.sizes):
        learned, _ = heads(chosen[:n], rejected[:n])  # the heads of the version before (untimed in the row)
        _, cold = heads(chosen[: n + args.new], rejected[: n + args.new])
        sample = np.sort(np.random.default_rng([args.seed, n]).choice(n, min(args.scale_replay, n), replace=False))
        index = np.concatenate([np.arange(n, n + args.new), sample])
        _, warm = heads(chosen[index], rejected[index], init=learned)
        rows.append({"history": n, "new": args.new, "cold": cold, "warm": warm})
        print(f"history {n}: cold {cold} | warm {warm}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an HH-style or TRL-style JSONL(.gz) file; part one is skipped without it")
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=300, help="pairs that arrive between two refits")
    parser.add_argument("--replay", type=int, default=300, help="part one: learned pairs replayed by a warm fit")
    parser.add_argument("--orders", type=int, default=3, help="part one: stream orders")
    parser.add_argument("--sizes", type=int, nargs="*", default=[25_000, 50_000, 100_000], help="part two: histories (none: skip)")
    parser.add_argument("--new", type=int, default=5_000, help="part two: new pairs a refit learns")
    parser.add_argument("--scale-replay", type=int, default=20_000, help="part two: learned pairs replayed (the studio's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    args.backbone = default_reward_backbone()
    print(f"torch threads {torch.get_num_threads()}", flush=True)
    out: dict = {"args": {k: v for k, v in vars(args).items() if k != "backbone"}}
    if args.data:
        pairs, skipped = read_pairs(args.data)
        print(f"{len(pairs)} pairs ({skipped} rows skipped), {args.test_size} held out, chunks of {args.chunk}, replay {args.replay}")
        encoders = EncoderCache()
        with tempfile.TemporaryDirectory() as workdir:
            out["stream"] = [row for order in range(args.orders) for row in stream_runs(pairs, args, order, Path(workdir), encoders)]
    if args.sizes:
        out["scale"] = scale_runs(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
