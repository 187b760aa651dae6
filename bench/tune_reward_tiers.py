"""Choose the reward tiers' settings on a dev split carved from the benchmark's training side.

The test pairs of ``bench.reward_accuracy`` (same ``--seed`` and ``--test-size``) are never read:
this script keeps only the training side and holds out ``--dev-fraction`` of it. For the fast
tier it embeds everything once (cached under ``--cache-dir``) and fits the ensemble for every
setting of a small grid; with ``--full-lrs`` it also runs a full-tier fit per learning rate and
scores the dev pairs with both the ensemble heads and the fine-tuned scalar head.

    .venv/bin/python -m bench.tune_reward_tiers --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from bench.reward_accuracy import read_pairs
from rm_trainer.config import default_reward_backbone
from rm_trainer.embeddings import EmbeddingCache, PairEncoder, embed_cached
from rm_trainer.ensemble import fit_ensemble
from rm_trainer.evaluate import pairwise_metrics

GRID = {
    "hidden": [64, 256],
    "learning_rate": [3e-4, 1e-3],
    "weight_decay": [1e-2, 1e-1],
    "batch_size": [64, 256],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dev-fraction", type=float, default=0.25)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--full-lrs", default="", help="comma-separated learning rates for full-tier fits")
    parser.add_argument("--full-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    backbone = args.backbone or default_reward_backbone()
    pairs, _ = read_pairs(args.data)
    order = np.random.default_rng(args.seed).permutation(len(pairs))
    train_side = [pairs[i] for i in order[args.test_size :]]  # the benchmark's test pairs come first
    dev_mask = np.random.default_rng(args.seed + 1).random(len(train_side)) < args.dev_fraction
    fit_pairs = [p for p, d in zip(train_side, dev_mask) if not d]
    dev_pairs = [p for p, d in zip(train_side, dev_mask) if d]

    encoder = PairEncoder.load(backbone, device="cpu")
    cache = EmbeddingCache(args.cache_dir, identity=encoder.identity, max_length=args.max_length)
    started = time.perf_counter()
    embed = lambda ps, side: embed_cached(encoder, cache, [p.prompt for p in ps], [getattr(p, side) for p in ps])  # noqa: E731
    x = {name: (embed(ps, "chosen"), embed(ps, "rejected")) for name, ps in (("fit", fit_pairs), ("dev", dev_pairs))}
    print(f"fit {len(fit_pairs)} dev {len(dev_pairs)}; embedded in {time.perf_counter() - started:.1f} s")

    results = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values))
        torch.manual_seed(0)
        started = time.perf_counter()
        ensemble = fit_ensemble(*x["fit"], members=args.members, seed=args.seed, epochs=50, patience=3, **setting)
        seconds = time.perf_counter() - started
        diffs = ensemble.member_rewards(x["dev"][0]).mean(0) - ensemble.member_rewards(x["dev"][1]).mean(0)
        metrics = pairwise_metrics(diffs)
        results.append((metrics["accuracy"], metrics["loss"], metrics["ece"], seconds, setting))
        print(f"dev accuracy {metrics['accuracy']:.3f} loss {metrics['loss']:.3f} ece {metrics['ece']:.3f} "
              f"{seconds:5.1f} s  epochs {ensemble.history['epochs']:2d}  {setting}", flush=True)
    print("\nbest by dev loss:")
    for accuracy, loss, ece, seconds, setting in sorted(results, key=lambda r: r[1])[:5]:
        print(f"  loss {loss:.3f} accuracy {accuracy:.3f} ece {ece:.3f} {seconds:4.1f} s {setting}")

    for lr in [float(v) for v in args.full_lrs.split(",") if v]:
        tune_full(fit_pairs, dev_pairs, lr, backbone, args)
    return 0


def tune_full(fit_pairs, dev_pairs, learning_rate: float, backbone: str, args) -> None:
    """Fit the full tier at one learning rate; print dev figures of its heads and of its scalar head."""
    import tempfile

    from rm_trainer.config import FitConfig
    from rm_trainer.evaluate import evaluate_pairs
    from rm_trainer.reward_model import RewardModel, load_tokenizer, tokenize_pairs
    from rm_trainer.scorer import ENCODER_FOLDER, RewardScorer
    from rm_trainer.store import CheckpointStore
    from rm_trainer.train import fit

    config = FitConfig(
        backbone=backbone, tier="full", full_learning_rate=learning_rate, full_epochs=args.full_epochs,
        max_length=args.max_length, validation_fraction=0.0, seed=args.seed, device="cpu",
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = fit(fit_pairs, config, store=CheckpointStore(tmp), name="full")
        seconds = time.perf_counter() - started
        heads = evaluate_pairs(RewardScorer.load(result.path, device="cpu"), dev_pairs)
        model = RewardModel.from_pretrained(f"{result.path}/{ENCODER_FOLDER}").eval()
        tokenizer = load_tokenizer(f"{result.path}/{ENCODER_FOLDER}")
        diffs = []
        with torch.inference_mode():
            for i in range(0, len(dev_pairs), 32):
                batch = dev_pairs[i : i + 32]
                r = model(**tokenize_pairs(tokenizer, [p.prompt for p in batch] * 2,
                                           [p.chosen for p in batch] + [p.rejected for p in batch], args.max_length))
                diffs += (r[: len(batch)] - r[len(batch) :]).tolist()
        scalar = pairwise_metrics(np.array(diffs))
    print(f"full lr {learning_rate:g}, {args.full_epochs} epochs: {seconds:.0f} s; dev heads accuracy {heads['accuracy']:.3f} loss {heads['loss']:.3f} "
          f"ece {heads['ece']:.3f}; scalar head accuracy {scalar['accuracy']:.3f} loss {scalar['loss']:.3f} "
          f"ece {scalar['ece']:.3f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
