"""How often the policy's replies hit the token budget, and what a larger budget costs.

Run from the project root:

    .venv/bin/python -m bench.reply_lengths --prompts 40 --n 4 --budgets 96,160,256 \
        --json bench/reply_lengths.json

It samples ``--n`` replies (the supply's SUPPLY_CANDIDATES) to ``--prompts`` Bitext customer
requests (``../shared/data/bitext-customer-support/customer_support_sample.csv``, drawn with
``--seed``) with the studio's sampling settings, once per budget, and prints per budget: the
share of replies cut off by the budget (no stop token before it), the share of *shown* replies
cut off when the supply prefers complete candidates (a pair from the complete ones when at least
two are complete, else a random pair of all, counted in expectation), the mean reply length in
tokens, the tokens/s and the seconds per reply. ``--system-prompt`` tries another system prompt.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from rm_trainer.config import DEFAULT_SYSTEM_PROMPT, GenerationConfig, default_generator_source
from rm_trainer.generator import Generator, PromptItem

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bitext-customer-support" / "customer_support_sample.csv"


def bitext_requests(path: str | Path, count: int, seed: int) -> list[str]:
    """Return ``count`` distinct customer requests (the ``instruction`` column), drawn with ``seed``."""
    with open(path, newline="", encoding="utf-8") as handle:
        requests = sorted({row["instruction"].strip() for row in csv.DictReader(handle) if row["instruction"].strip()})
    return random.Random(seed).sample(requests, min(count, len(requests)))


def shown_truncated_share(truncated: Sequence[Sequence[bool]]) -> float:
    """Return the expected share of shown replies that are cut off when the supply prefers complete ones.

    Per prompt with at least two candidates: a pair of complete candidates when two are complete
    (none shown cut off), else a uniformly random pair of all (2 * cut / all of the two shown).
    """
    shown, cut = 0, 0.0
    for flags in truncated:
        if len(flags) < 2:
            continue
        shown += 2
        if sum(not f for f in flags) < 2:
            cut += 2 * sum(flags) / len(flags)
    return cut / shown if shown else 0.0


def measure(generator: Generator, items: list[PromptItem], n: int, config: GenerationConfig) -> dict[str, Any]:
    """Return the figures of one budget."""
    result = generator.generate_with_stats(items, n, config)
    flags = [f for row in result.raw_truncated for f in row]
    replies = len(flags)
    return {
        "max_new_tokens": config.max_new_tokens,
        "replies": replies,
        "truncated_share": sum(flags) / replies,
        "shown_truncated_share": shown_truncated_share(result.truncated),
        "mean_reply_tokens": result.new_tokens / replies,
        "tokens_per_second": result.tokens_per_second,
        "seconds_per_reply": result.seconds / replies,
        "seconds": result.seconds,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure each budget, print a table and return the figures."""
    args = _parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder, gguf_file = args.folder, args.gguf_file
    if folder is None:
        folder, gguf_file = default_generator_source()
    generator = Generator.load(folder, gguf_file, device=args.device)
    items = [PromptItem(text) for text in bitext_requests(args.data, args.prompts, args.seed)]
    rows = []
    for budget in args.budgets:
        config = GenerationConfig(max_new_tokens=budget, temperature=args.temperature, batch_size=args.batch_size,
                                  seed=args.seed, system_prompt=args.system_prompt, device=args.device)
        rows.append(measure(generator, items, args.n, config))
        r = rows[-1]
        print(f"budget {budget:4d}: cut off {r['truncated_share']:6.1%} of replies, {r['shown_truncated_share']:6.1%} of shown; "
              f"mean {r['mean_reply_tokens']:5.1f} tokens; {r['tokens_per_second']:6.1f} tokens/s; "
              f"{r['seconds_per_reply']:.2f} s/reply", flush=True)
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": torch.get_num_threads(),
                    "device": str(generator.device), "dtype": str(generator.dtype)},
        "model": {"folder": str(folder), "gguf_file": gguf_file},
        "prompts": len(items), "n": args.n, "temperature": args.temperature, "batch_size": args.batch_size,
        "system_prompt": args.system_prompt, "budgets": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--n", type=int, default=4, help="replies per prompt (SUPPLY_CANDIDATES)")
    parser.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")], default=[96, 160, 256])
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder")
    parser.add_argument("--gguf-file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
