"""Held-out accuracy and wall time of the reward tiers, beside TRL's RewardTrainer and the length rule.

Run from the project root:

    .venv/bin/python -m bench.reward_accuracy --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz \
        --train-size 1000 --test-size 500 --tiers fast,full --trl --json bench/out.json

The pairs are split once by ``--seed`` into a held-out test set and a training set. Each tier is
trained through ``rm_trainer.train.fit`` (validation_fraction 0: every training pair is used) and
scored on the test set through ``RewardScorer``. The fast tier is timed twice: with a cold
embedding cache (every text is embedded) and as a refit with a warm cache (the online case, where
the texts were embedded when they were first scored). TRL's RewardTrainer fine-tunes the same
backbone (AutoModelForSequenceClassification, num_labels=1) on the same pairs, fed the same
token ids (prompt and response as a text pair, cut to the same ``--max-length`` the same way),
with TRL's defaults (learning rate 1e-4, batch 8, linear decay, dropout off) except: gradient
checkpointing off (it only trades time for memory), bf16 on exactly where rm_trainer uses it
(CUDA, CPUs with AMX or AVX-512 BF16; not with ``--float32``), and ``--trl-epochs``. Times are
wall-clock seconds of training alone; scoring the test set is timed apart.
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

from rm_trainer.config import FitConfig, default_reward_backbone
from rm_trainer.data import PreferencePair, read_preference_file
from rm_trainer.device import bf16_native, native_autocast, resolve_device
from rm_trainer.embeddings import EncoderCache
from rm_trainer.evaluate import evaluate_pairs, length_baseline, pairwise_metrics
from rm_trainer.reward_model import encode_pairs, load_tokenizer
from rm_trainer.scorer import RewardScorer
from rm_trainer.store import CheckpointStore
from rm_trainer.train import fit


def read_pairs(path: str | Path) -> tuple[list[PreferencePair], int]:
    """Return the pairs of an HH-style or TRL-style file, and how many rows were skipped."""
    return read_preference_file(path, skip_bad=True)


def split(pairs: list[PreferencePair], train_size: int, test_size: int, seed: int) -> tuple[list, list]:
    """Return (train, test): a fixed-seed shuffle, test first, so a larger train set keeps the same test set."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    if train_size + test_size > len(pairs):
        raise SystemExit(f"asked for {train_size} + {test_size} pairs, the file has {len(pairs)}")
    test = [pairs[i] for i in order[:test_size]]
    train = [pairs[i] for i in order[test_size : test_size + train_size]]
    return train, test


def runs_bf16(args) -> bool:
    """Return whether rm_trainer (and TRL beside it) multiply in bf16 here: where it is native, unless ``--float32``."""
    return bf16_native(resolve_device(args.device)) and not args.float32


def run_tier(tier: str, train, test, args, backbone: str, workdir: Path, encoders: EncoderCache) -> list[dict]:
    """Fit one tier through rm_trainer and return its rows (the fast tier gives a cold and a warm row)."""
    config = FitConfig(
        backbone=backbone, tier=tier, max_length=args.max_length, validation_fraction=0.0, seed=args.seed,
        embedding_cache_dir=str(workdir / "cache"), device=args.device, bf16=not args.float32,
    )
    store = CheckpointStore(workdir / "store")
    rows = []
    runs = [("cold cache", f"{tier}-1"), ("warm cache refit", f"{tier}-2")] if tier == "fast" else [("", f"{tier}-1")]
    for note, name in runs:
        started = time.perf_counter()
        result = fit(train, config, store=store, name=name, encoders=encoders)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        metrics = evaluate_pairs(RewardScorer.load(result.path, device=args.device, encoders=encoders, bf16=not args.float32), test)
        rows.append(_row(f"rm_trainer {tier}" + (f" ({note})" if note else ""), metrics, seconds, len(train),
                         time.perf_counter() - started))
    return rows


def run_trl(train, test, args, backbone: str, workdir: Path) -> dict:
    """Train TRL's RewardTrainer on the same pairs and token ids; return its row."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    device = resolve_device(args.device)
    tokenizer = load_tokenizer(backbone)
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    dataset = Dataset.from_dict({
        "chosen_ids": _ids(tokenizer, train, "chosen", args.max_length),
        "rejected_ids": _ids(tokenizer, train, "rejected", args.max_length),
    })
    config = RewardConfig(
        output_dir=str(workdir / "trl"), num_train_epochs=args.trl_epochs, max_length=args.max_length,
        bf16=runs_bf16(args), gradient_checkpointing=False, use_cpu=device.type == "cpu", save_strategy="no",
        report_to=[], logging_steps=50, seed=args.seed, disable_tqdm=True,
    )
    trainer = RewardTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started

    started = time.perf_counter()
    model.eval()
    rewards = {}
    for side in ("chosen", "rejected"):
        ids = _ids(tokenizer, test, side, args.max_length)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty(len(ids))
        with torch.inference_mode(), native_autocast(model.device):
            for start in range(0, len(order), 64):
                index = order[start : start + 64]
                batch = tokenizer.pad({"input_ids": [ids[i] for i in index]}, return_tensors="pt").to(model.device)
                out[index] = model(**batch).logits.squeeze(-1).float().cpu().numpy()
        rewards[side] = out
    metrics = pairwise_metrics(rewards["chosen"] - rewards["rejected"])
    return _row(f"TRL RewardTrainer ({args.trl_epochs:g} epoch)", metrics, seconds, len(train), time.perf_counter() - started)


def _ids(tokenizer, pairs, side: str, max_length: int) -> list[list[int]]:
    encodings = encode_pairs(tokenizer, [p.prompt for p in pairs], [getattr(p, side) for p in pairs], max_length)
    return [e["input_ids"] for e in encodings]


def _row(method: str, metrics: dict, seconds: float | None, n_train: int, score_seconds: float | None) -> dict:
    return {
        "method": method,
        "accuracy": metrics["accuracy"],
        "loss": metrics.get("loss"),
        "ece": metrics.get("ece"),
        "train_seconds": seconds,
        "train_pairs_per_second": n_train / seconds if seconds else None,
        "score_seconds": score_seconds,
    }


def print_table(rows: list[dict], header: str) -> None:
    """Print the rows as an aligned table."""
    print(header)
    print(f"{'method':<40} {'accuracy':>8} {'loss':>7} {'ECE':>6} {'train s':>9} {'pairs/s':>9} {'score s':>8}")
    fmt = lambda v, spec: format("-", f">{spec.split('.')[0]}") if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        print(f"{r['method']:<40} {fmt(r['accuracy'], '8.3f')} {fmt(r['loss'], '7.3f')} {fmt(r['ece'], '6.3f')} "
              f"{fmt(r['train_seconds'], '9.1f')} {fmt(r['train_pairs_per_second'], '9.1f')} {fmt(r['score_seconds'], '8.1f')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="HH-style or TRL-style .jsonl / .jsonl.gz")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiers", default="fast,full", help="comma-separated: fast, full (or empty)")
    parser.add_argument("--trl", action="store_true", help="also train TRL's RewardTrainer")
    parser.add_argument("--trl-epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--backbone", default=None, help="encoder folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--float32", action="store_true", help="float32 even where bf16 is native (rm_trainer.device.bf16_native)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    backbone = args.backbone or default_reward_backbone()
    pairs, skipped = read_pairs(args.data)
    train, test = split(pairs, args.train_size, args.test_size, args.seed)
    header = (f"{Path(args.data).name}: {len(pairs)} pairs ({skipped} skipped), train {len(train)}, test {len(test)}, "
              f"seed {args.seed}, max_length {args.max_length}, torch threads {torch.get_num_threads()}, "
              f"device {args.device}, {'bf16' if runs_bf16(args) else 'float32'}")
    rows = [_row("length rule (pick the longer reply)", length_baseline(test), None, len(train), None)]
    encoders = EncoderCache()
    with tempfile.TemporaryDirectory() as tmp:
        for tier in [t for t in args.tiers.split(",") if t]:
            rows += run_tier(tier, train, test, args, backbone, Path(tmp), encoders)
            print_table(rows, header)
            sys.stdout.flush()
        if args.trl:
            rows.append(run_trl(train, test, args, backbone, Path(tmp)))
    print_table(rows, header)
    if args.json:
        Path(args.json).write_text(json.dumps({"setup": header, "args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
