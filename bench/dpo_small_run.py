"""Wall time of a small real DPO run on the default policy.

Run from the project root:

    .venv/bin/python -m bench.dpo_small_run --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz \
        --pairs 32 --json bench/dpo_small_run.json

Takes the first ``--pairs`` single-turn HH-RLHF pairs (one Human turn; the prompt is that turn,
the replies are the two Assistant answers), materialises SmolLM2-135M-Instruct from its GGUF
file into a temporary store (timed apart), then times ``train_dpo`` on them with the default
``DPOConfig`` except ``--max-length``, ``--batch-size``, ``--beta`` and ``--max-steps``. It
reports the one reference pass (the parent's log-probabilities of every pair, computed once
per run) apart from the seconds per optimizer step. The data is read here only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from typing import Any, Iterator

import torch

from rm_trainer.config import DPOConfig, default_generator_source
from rm_trainer.data import PreferencePair
from rm_trainer.transcript import split_dialogues
from rm_trainer.dpo import train_dpo
from rm_trainer.generator import materialise_base_policy
from rm_trainer.store import CheckpointStore



def single_turn_pairs(path: str, limit: int) -> Iterator[PreferencePair]:
    """Yield up to ``limit`` pairs of HH-RLHF dialogues with one Human turn and two different replies."""
    count = 0
    with gzip.open(path, "rt") as f:
        for line_number, line in enumerate(f):
            row = json.loads(line)
            try:
                prompt, chosen, rejected = split_dialogues(row["chosen"], row["rejected"])
            except ValueError:
                continue
            if prompt.count("\n\nHuman:") != 1 or not chosen or not rejected or chosen == rejected:
                continue
            question = prompt.removeprefix("\n\nHuman:").removesuffix("\n\nAssistant:").strip()
            yield PreferencePair(f"hh-{line_number}", question, chosen, rejected)
            count += 1
            if count == limit:
                return


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run DPO once and print its time and training figures; return them."""
    args = _parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = list(single_turn_pairs(args.data, args.pairs))
    config = DPOConfig(max_length=args.max_length, batch_size=args.batch_size, epochs=args.epochs, device=args.device,
                       bf16=not args.no_bf16, beta=args.beta, max_steps=args.max_steps)
    folder, gguf_file = default_generator_source()
    with tempfile.TemporaryDirectory() as root:
        store = CheckpointStore(root)
        start = time.perf_counter()
        base = materialise_base_policy(store, "base", folder, gguf_file)
        materialise_seconds = time.perf_counter() - start

        def progress(event: dict[str, Any]) -> None:
            if event["phase"] != "dpo":
                return
            print(f"step {event['step']}/{event['total_steps']} loss {event['loss']:.4f} margin {event['reward_margin']:+.4f}", flush=True)

        result = train_dpo(base, pairs, config, store=store, name="dpo-1", progress=progress)
        adapter_bytes = sum(p.stat().st_size for p in (store.path("policy", "dpo-1")).iterdir())
        base_bytes = sum(p.stat().st_size for p in base.iterdir())
    report = {
        "pairs": len(pairs), "steps": result.steps, "device": result.manifest["device"], "torch_threads": torch.get_num_threads(),
        "bf16": config.bf16 and result.manifest["device"].startswith("cuda"), "max_length": args.max_length, "batch_size": args.batch_size, "epochs": args.epochs,
        "materialise_seconds": round(materialise_seconds, 1), "dpo_seconds": round(result.seconds, 1),
        "reference_pass_seconds": round(result.metrics["reference_seconds"], 2),
        "seconds_per_step": round(result.metrics["seconds_per_step"], 2), "beta": config.beta,
        "loss_first": round(result.metrics["loss_history"][0], 4), "loss_last_epoch": round(result.metrics["loss"], 4),
        "reward_margin": round(result.metrics["reward_margin"], 4), "reward_accuracy": round(result.metrics["reward_accuracy"], 3),
        "checkpoint_mb": round(adapter_bytes / 2**20, 2), "base_checkpoint_mb": round(base_bytes / 2**20, 1),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="an HH-RLHF .jsonl.gz file")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--beta", type=float, default=DPOConfig.beta)
    parser.add_argument("--max-steps", type=int, default=0, help="cap on optimizer steps (0: none)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-bf16", action="store_true", help="float32 on CUDA too (a CPU always trains in float32)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="write the figures to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
