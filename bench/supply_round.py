"""A supply round's generation, as the studio runs it: ``model.generate`` against the rows that leave the batch.

Run from the project root:

    .venv/bin/python -m bench.supply_round --rounds 3 --batch-sizes 16,32 --threads 1 --json bench/supply_round.json

Each round answers ``--prompts`` customer-service requests of the Bitext sample (``../shared/data``, drawn with the
round's seed) with ``--candidates`` replies each, at the studio's sampling settings (``GenerationConfig``'s defaults:
192 new tokens, temperature 0.7, top-k 50, top-p 0.9, the repetition penalty and the system prompt). Two decoders answer
the same requests with the same seed, interleaved, at each batch size:

- ``generate``: transformers' ``model.generate``, as ``rm_trainer.generator`` called it until session 56 (its rows
  padded to the batch's longest, each token drawn from the whole vocabulary);
- ``rows``: ``rm_trainer.decoding.sample_rows``, what the studio runs now.

It prints the wall and CPU seconds of each round (the process's own accounting), the CPU a kept token, the replies'
tokens, how many came back cut off and how many distinct replies a request got; then each decoder's CPU a round and a
token against ``generate``'s at the first batch size, round by round. The two decoders draw different tokens (the same
seed, different draws), so a round's replies and their lengths differ between them: the CPU a token is the fairer figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig as HFGenerationConfig, LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from rm_trainer.config import GenerationConfig, default_generator_source
from rm_trainer.generator import Generator, PromptItem

BITEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "bitext-customer-support" / "customer_support_sample.csv"


def generate_batch(generator: Generator, rows: list[list[int]], config: GenerationConfig, should_stop=None):
    """The batch as ``model.generate`` samples it: the baseline, with the processors the generator gave it."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), generator.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, ids in enumerate(rows):
        input_ids[r, width - len(ids):] = torch.tensor(ids)
        mask[r, width - len(ids):] = 1
    hf = HFGenerationConfig(
        max_new_tokens=config.max_new_tokens, do_sample=True, num_beams=1, temperature=config.temperature, top_p=config.top_p,
        top_k=config.top_k, repetition_penalty=1.0, pad_token_id=generator.pad_id, eos_token_id=list(generator.stop_ids),
        suppress_tokens=generator.suppressed_ids or None,
    )
    processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(config.repetition_penalty, prompt_ignore_length=width)])
    output = generator.model.generate(input_ids=input_ids.to(generator.device), attention_mask=mask.to(generator.device),
                                      generation_config=hf, logits_processor=processors)
    return generator.replies_read(output[:, width:].cpu().tolist())


def requests(count: int, seed: int) -> list[str]:
    """``count`` Bitext customer requests, drawn with ``seed``."""
    with BITEXT.open(newline="", encoding="utf-8") as f:
        texts = [row["instruction"] for row in csv.DictReader(f) if row["instruction"].strip()]
    return random.Random(seed).sample(texts, count)


def one_round(generator: Generator, decoder: str, items: list[PromptItem], n: int, config: GenerationConfig) -> dict[str, Any]:
    """Answer ``items`` with ``n`` replies each through ``decoder``; return its figures."""
    own = generator._sample_batch
    if decoder == "generate":
        generator._sample_batch = lambda rows, cfg, should_stop=None: generate_batch(generator, rows, cfg)
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        result = generator.generate_with_stats(items, n, config)
    finally:
        generator._sample_batch = own
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    replies = [length for lengths in result.raw_lengths for length in lengths]
    return {
        "decoder": decoder, "batch_size": config.batch_size, "seed": config.seed, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "replies": len(replies), "tokens": result.new_tokens, "cpu_ms_per_token": round(1000 * cpu / result.new_tokens, 2), "mean_tokens": round(statistics.mean(replies), 1),
        "cut_off": sum(flag for flags in result.raw_truncated for flag in flags),
        "distinct_per_request": round(statistics.mean(len(texts) for texts in result.texts), 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the rounds, print each and the ratios; return the figures."""
    args = _parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = Generator.load(*default_generator_source(), device=args.device)
    generator.generate_with_stats([PromptItem("Hello")], 2, GenerationConfig(max_new_tokens=8))  # warm-up
    runs = []
    for k in range(args.rounds):
        items = [PromptItem(text) for text in requests(args.prompts, seed=args.seed + k)]
        for batch_size in args.batch_sizes:
            config = GenerationConfig(batch_size=batch_size, seed=args.seed + k)
            for decoder in ("generate", "rows") if k % 2 == 0 else ("rows", "generate"):
                run = one_round(generator, decoder, items, args.candidates, config)
                runs.append({"round": k + 1, **run})
                print(json.dumps(runs[-1]), flush=True)
    ratios: dict[str, dict[str, list[float]]] = {"cpu_s": {}, "cpu_ms_per_token": {}}
    for key, table in ratios.items():
        for batch_size in args.batch_sizes:
            for decoder in ("generate", "rows"):
                table[f"{decoder}@{batch_size}"] = [
                    round(mine[key] / base[key], 3) for mine, base in zip(
                        (r for r in runs if r["decoder"] == decoder and r["batch_size"] == batch_size),
                        (r for r in runs if r["decoder"] == "generate" and r["batch_size"] == args.batch_sizes[0]))
                ]
        print(f"{key} against generate at batch {args.batch_sizes[0]}, round by round:")
        for name, values in table.items():
            print(f"  {name:>14}: {values}  (median {statistics.median(values):.3f})")
    report = {
        "cpu": platform.processor() or platform.machine(), "device": str(generator.device), "dtype": str(generator.dtype),
        "torch_threads": torch.get_num_threads(), "prompts": args.prompts, "candidates": args.candidates, "runs": runs,
        "cpu_against_generate": ratios,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=8, help="requests a round (SUPPLY_BATCH_PROMPTS)")
    parser.add_argument("--candidates", type=int, default=4, help="replies a request (SUPPLY_CANDIDATES)")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[16, 32])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="write the figures to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
