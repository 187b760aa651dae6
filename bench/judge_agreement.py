"""A local generative judge, asked as the studio asks it, measured against the independent judge on real candidate pairs.

Run from the project root:

    .venv/bin/python -m bench.judge_agreement --pairs 120 --json bench/out/judge_agreement.json
    .venv/bin/python -m bench.judge_agreement --model /path/to/a/chat/model --judge mypkg.judges:judge

What it answers: would the studio's offline generative judge (``JUDGE_MODEL``; by default the
base policy itself, SmolLM2-135M-Instruct, the only chat model this machine has offline) earn its
audit? The pairs are train candidate pairs of ``strategy_efficacy``'s cached pool (the real base
policy's replies to Bitext requests; ``--quick`` takes the quick pool), sampled with a seed and
kept only where the independent judge's noiseless preference is A or B. The model is asked with
the studio's own protocol (``feedback_app.services.judge_protocol``: the rubric from the default
campaign's criteria, ``LABEL_CRITERIA``, both orders in one batch, greedy answers of at most ``--max-tokens``, the answer parsed
and validated), so what it says here is what the studio would store as its verdicts.

Printed and written with ``--json``: verdicts and abstentions by reason (unparseable, flipped with
the order), how often a valid answer picks the reply shown first, position consistency (of the pairs answered validly in both orders, the share whose
two answers name the same reply), the verdicts' agreement with the independent judge's noiseless
preference with a Wilson 95% interval, the same per confidence band and at each threshold (the
studio's reliability plot), what a lenient reader of the unparseable answers' prose ("The first response
is better") would get, the gate's figure (``AI_MIN_AGREEMENT``), and the seconds and CPU
seconds per question. Nothing here reaches a studio: no database, no store.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_app.settings")

PROSE_VERDICT = re.compile(r"\b(?:the )?(first|second|1|2)(?:st|nd)?(?: response| reply)? is (?:\w+ )?better|response (1|2) is (?:\w+ )?better", re.I)
CONFIDENCE_BANDS = ((0.5, 0.7), (0.7, 0.9), (0.9, 1.01))
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def wilson(successes: int, n: int) -> list[float] | None:
    """Return the studio's Wilson 95% interval of a share, rounded, or None without trials."""
    from feedback_app.stats.ratings import wilson_interval

    interval = wilson_interval(successes, n)
    return None if interval is None else [round(bound, 3) for bound in interval]


def sample_pairs(pool: dict, prefer, n: int, seed: int) -> list[dict[str, Any]]:
    """Return up to ``n`` distinct train candidate pairs whose noiseless preference is "a" or "b", with that preference."""
    pairs = [(g["prompt"], g["replies"][i]["text"], g["replies"][j]["text"])
             for g in pool["groups"] if g["split"] == "train"
             for i in range(len(g["replies"])) for j in range(i + 1, len(g["replies"]))]
    random.Random(seed).shuffle(pairs)
    chosen = []
    for prompt, a, b in pairs:
        truth = prefer(prompt, a, b)
        if truth in ("a", "b"):
            chosen.append({"prompt": prompt, "a": a, "b": b, "truth": truth})
        if len(chosen) == n:
            break
    return chosen


def prose_better(text: str) -> int | None:
    """Return the reply (1 or 2, as shown) that prose such as "The first response is better" names first, or None."""
    match = PROSE_VERDICT.search(text)
    if match is None:
        return None
    word = (match.group(1) or match.group(2)).lower()
    return 1 if word in ("first", "1") else 2


def lenient(pairs: list[dict], answers: list) -> dict[str, Any]:
    """Return what a lenient reader of the unparseable answers' prose would get: read, consistent, agreement, first-shown share."""
    read = consistent = right = first = 0
    for pair, answer in zip(pairs, answers):
        raw = answer.detail.get("raw")
        if answer.reason != "unparseable" or not raw:
            continue
        a_first, b_first = prose_better(raw[0]), prose_better(raw[1])
        if a_first is None or b_first is None:
            continue
        read += 1
        first += (a_first == 1) + (b_first == 1)
        choices = ("a" if a_first == 1 else "b", "b" if b_first == 1 else "a")
        if choices[0] == choices[1]:
            consistent += 1
            right += choices[0] == pair["truth"]
    return {"both_orders_read": read, "consistent": consistent, "agreement_of_consistent": round(right / consistent, 3) if consistent else None,
            "first_shown_named": round(first / (2 * read), 3) if read else None}


def _agreement(judged: list[tuple[dict, Any]]) -> dict[str, Any]:
    """Return how many verdicts there are and their agreement with the truth, with its Wilson interval."""
    hits = sum(answer.choice == pair["truth"] for pair, answer in judged)
    return {"verdicts": len(judged), "agreement": round(hits / len(judged), 3) if judged else None, "interval": wilson(hits, len(judged))}


def summarise(pairs: list[dict], answers: list) -> dict[str, Any]:
    """Return abstentions, position consistency and agreement (overall, per confidence band, per threshold)."""
    reasons = Counter(answer.reason or "verdict" for answer in answers)
    judged = [(pair, answer) for pair, answer in zip(pairs, answers) if answer.choice]
    parsed_both = reasons["verdict"] + reasons["flipped"]
    overall = _agreement(judged)
    bands = [{"confidence": [low, min(high, 1.0)], **_agreement([(p, a) for p, a in judged if low <= a.confidence < high])}
             for low, high in CONFIDENCE_BANDS]
    thresholds = []
    for threshold in THRESHOLDS:
        kept = _agreement([(p, a) for p, a in judged if a.confidence >= threshold])
        thresholds.append({"threshold": threshold, "coverage": round(kept["verdicts"] / len(pairs), 3) if pairs else None, **kept})
    orders = [o for a in answers for o in a.detail.get("orders", [])]  # every validly parsed answer, in either order
    return {"pairs": len(pairs), "verdicts": len(judged), "abstentions": {k: v for k, v in reasons.items() if k != "verdict"},
            "abstention_rate": round(1 - len(judged) / len(pairs), 3) if pairs else None,
            "position_consistency": round(reasons["verdict"] / parsed_both, 3) if parsed_both else None,
            "agreement": overall["agreement"], "agreement_interval": overall["interval"],
            "truth_a_share": round(sum(p["truth"] == "a" for p in pairs) / len(pairs), 3) if pairs else None,
            "first_shown_chosen": round(sum(o["choice"] == o["shown_first"] for o in orders) / len(orders), 3) if orders else None,
            "by_confidence": bands, "by_threshold": thresholds, "unparseable_prose": lenient(pairs, answers)}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", default="bench.judges:judge", help="the independent judge, module:callable on PYTHONPATH")
    parser.add_argument("--model", default="", help="a chat model folder (transformers or a policy checkpoint); default: the base policy's GGUF")
    parser.add_argument("--pairs", type=int, default=120, help="candidate pairs asked about (each asked in both orders)")
    parser.add_argument("--quick", action="store_true", help="the quick pool of strategy_efficacy (40 train prompts)")
    parser.add_argument("--max-tokens", type=int, default=None, help="the answer's token budget (default JUDGE_MAX_TOKENS)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import django
    import torch

    django.setup()
    from django.conf import settings

    from bench.active_learning import cpu_name, write_json
    from bench.candidate_pool import load_or_generate
    from bench.judges import load_judge, noiseless
    from bench.strategy_efficacy import parse as pool_args, pool_spec
    from feedback_app.services.judge_protocol import both_orders_answers
    from rm_trainer.chat import chat_replies
    from rm_trainer.config import default_generator_source
    from rm_trainer.generator import Generator

    if args.threads:
        torch.set_num_threads(args.threads)
    prefer = noiseless(load_judge(args.judge))
    p = pool_args(["--quick"] if args.quick else [])
    pool, pool_path = load_or_generate(pool_spec(p), device=args.device, log=lambda m: print(m, flush=True))
    pairs = sample_pairs(pool, prefer, args.pairs, args.seed)
    folder, gguf_file = (args.model, None) if args.model else default_generator_source()
    generator = Generator.load(folder, gguf_file, device=args.device)
    max_tokens = args.max_tokens or settings.JUDGE_MAX_TOKENS
    criteria = list(settings.LABEL_CRITERIA)  # the default campaign's criteria, read without a database
    questions = 0

    def ask(batch: list) -> list:
        nonlocal questions
        questions += len(batch)
        return chat_replies(generator, batch, max_new_tokens=max_tokens, batch_size=args.batch_size)

    wall, cpu = time.perf_counter(), time.process_time()
    answers = []
    for start in range(0, len(pairs), 8):
        chunk = pairs[start:start + 8]
        answers += both_orders_answers(ask=ask, items=[(q["prompt"], [], q["a"], q["b"]) for q in chunk], criteria=criteria)
        print(f"asked {start + len(chunk)}/{len(pairs)} pairs ({time.perf_counter() - wall:.0f} s)", flush=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {"model": args.model or f"{folder}/{gguf_file}", "judge": args.judge, "pool": pool_path.name, "criteria": list(criteria),
              "max_tokens": max_tokens, **summarise(pairs, answers), "gate_min_agreement": settings.AI_MIN_AGREEMENT,
              "seconds": round(wall, 1), "seconds_per_question": round(wall / max(1, questions), 2),
              "cpu_seconds_per_question": round(cpu / max(1, questions), 2),
              "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, {generator.device}, torch threads {torch.get_num_threads()}",
              "raw_examples": [a.detail for a in answers[:3]]}
    print(json.dumps({k: v for k, v in result.items() if k != "raw_examples"}, indent=2))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
