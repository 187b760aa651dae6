"""How often the policy's replies hit the token budget, and what a larger budget costs.

Run from the project root:

    .venv/bin/python -m bench.reply_lengths --prompts 40 --n 4 --budgets 96,160,256 \
        --json bench/reply_lengths.json

It samples ``--n`` replies (the supply's SUPPLY_CANDIDATES) to ``--prompts`` Bitext customer
requests (``../shared/data/bitext-customer-support/customer_support_sample.csv``, drawn with
``--seed``) with the studio's sampling settings, once, at the largest budget (one seed draws
the same tokens whatever the budget, so that run tells what each smaller one cuts off), and
prints per budget: the
share of replies cut off by the budget (no stop token before it), the share of *shown* replies
cut off when the supply prefers complete candidates (a pair from the complete ones when at least
two are complete, else a random pair of all, counted in expectation), the mean reply length in
tokens, the tokens/s and the seconds per reply (measured at the largest budget; at a smaller one
estimated from the run's seconds per decoding step). ``--system-prompt`` tries another one.
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


def at_budget(lengths: Sequence[Sequence[int]], truncated: Sequence[Sequence[bool]], run_budget: int, budget: int) -> list[list[bool]]:
    """Return per raw sample whether it would be cut off at ``budget`` (at most the budget it was sampled with).

    Sampling with one seed draws the same tokens whatever the budget, so a run at the largest budget
    answers every smaller one: a reply of L tokens (its stop token included) is cut off at b < L.
    """
    if budget > run_budget:
        raise ValueError(f"a run at {run_budget} tokens cannot tell what {budget} would cut off")
    if budget == run_budget:
        return [list(row) for row in truncated]
    return [[length > budget for length in row] for row in lengths]


def batch_steps(lengths: Sequence[int], batch_size: int, budget: int) -> int:
    """Return the decoding steps of the rows in batches: each batch runs until its longest row stops or the budget."""
    return sum(min(budget, max(lengths[k:k + batch_size])) for k in range(0, len(lengths), batch_size))


def measure(generator: Generator, items: list[PromptItem], n: int, config: GenerationConfig, budgets: Sequence[int]) -> list[dict[str, Any]]:
    """Sample once at ``config.max_new_tokens`` and return the figures of every budget up to it.

    Seconds at a smaller budget are estimated: the run's seconds per decoding step times the steps
    the smaller budget's batches would run. Rough since rows leave their batch as they end
    (``rm_trainer.decoding``): a step costs less once some rows ended, which this average ignores.
    """
    result = generator.generate_with_stats(items, n, config)
    flat = [length for row in result.raw_lengths for length in row]
    per_step = result.seconds / batch_steps(flat, config.batch_size, config.max_new_tokens)
    rows = []
    for budget in budgets:
        cut = at_budget(result.raw_lengths, result.raw_truncated, config.max_new_tokens, budget)
        flags = [f for row in cut for f in row]
        seconds = result.seconds if budget == config.max_new_tokens else per_step * batch_steps(flat, config.batch_size, budget)
        tokens = sum(min(length, budget) for length in flat)
        rows.append({
            "max_new_tokens": budget,
            "replies": len(flags),
            "truncated_share": sum(flags) / len(flags),
            "shown_truncated_share": shown_truncated_share(cut),
            "mean_reply_tokens": tokens / len(flags),
            "tokens_per_second": tokens / seconds,
            "seconds_per_reply": seconds / len(flags),
            "measured": budget == config.max_new_tokens,
        })
    return rows


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
    config = GenerationConfig(max_new_tokens=max(args.budgets), temperature=args.temperature, batch_size=args.batch_size,
                              seed=args.seed, system_prompt=args.system_prompt, device=args.device)
    rows = measure(generator, items, args.n, config, sorted(args.budgets))
    for r in rows:
        budget = r["max_new_tokens"]
        print(f"budget {budget:4d}: cut off {r['truncated_share']:6.1%} of replies, {r['shown_truncated_share']:6.1%} of shown; "
              f"mean {r['mean_reply_tokens']:5.1f} tokens; {r['tokens_per_second']:6.1f} tokens/s; "
              f"{r['seconds_per_reply']:.2f} s/reply" + ("" if r["measured"] else " (estimated)"), flush=True)
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
