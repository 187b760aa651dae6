"""What each reward tier can learn of the independent judge: the fast and the full tier, fit on the same pairs of the cached pool.

Run from the project root (the pool is ``strategy_efficacy``'s, generated and cached on first use):

    .venv/bin/python -m bench.tier_ceiling --labels 500 --json bench/out/tier_ceiling.json

Two training sets of the pool's train candidate pairs: ``--labels`` random pairs, each labelled
by one noisy judge draw (what raters would give; "both_bad" dropped), and every train pair
labelled by the judge's noiseless preference (the most the pool can teach; a pair it scores equal is a tie),
both built by ``strategy_efficacy``'s ``Simulation`` as its own fits build them. Each set is fit by
``rm_trainer.train.fit`` as a refit would, once per tier and ``--full-epochs`` value (the full
tier fine-tunes the encoder first, at ``FitConfig``'s learning rate), with no validation split.
Each model is measured like ``strategy_efficacy`` measures the fast tier: agreement with the
judge's noiseless preference on every held-out reply pair, and best-of-n's noiseless win rate
against the base reply, with the wall and CPU seconds of the fit.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from typing import Any

import torch

from bench.active_learning import cpu_name, write_json
from bench.candidate_pool import load_or_generate
from bench.judges import load_judge
from bench.strategy_efficacy import Simulation, label_sides, pool_spec
from bench.strategy_efficacy import parse as pool_args
from rm_trainer.config import FitConfig, default_reward_backbone
from rm_trainer.data import PreferencePair
from rm_trainer.scorer import RewardScorer
from rm_trainer.store import CheckpointStore
from rm_trainer.train import fit


def noisy_labels(sim: Simulation, n: int, seed: int) -> list[dict]:
    """Return ``n`` labels of random train candidate pairs, each one noisy judge draw (as ``Simulation.label`` draws them)."""
    rng, labels = random.Random(f"tier-{seed}"), []
    for _ in range(n):
        group = rng.choice(sim.train)
        i, j = rng.sample(range(len(group["replies"])), 2)
        labels.append(sim.label(group, i, j, rng))
    return labels


def preference_pairs(sim: Simulation, labels: list[dict]) -> list[PreferencePair]:
    """Return the labels as the pairs a refit trains on: "both_bad" dropped, a tie fitted as a tie, the strength as the margin."""
    by_id, pairs = {id(g): g for g in sim.train}, []
    for k, label in enumerate(labels):
        if label["choice"] == "both_bad":
            continue
        group = by_id[label["group"]]
        chosen, rejected, tie, margin = label_sides(label)
        pairs.append(PreferencePair(pair_id=f"pair-{k}", prompt=group["prompt"], chosen=group["replies"][chosen]["text"],
                                    rejected=group["replies"][rejected]["text"], margin=margin, tie=tie))
    return pairs


def measure_fit(sim: Simulation, pairs: list[PreferencePair], config: FitConfig) -> dict[str, Any]:
    """Fit one reward model on ``pairs``; return its held-out figures and the fit's wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as root:
        wall, cpu = time.perf_counter(), time.process_time()
        result = fit(pairs, config, store=CheckpointStore(root), name="rm-ceiling")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        scorer = RewardScorer.load(result.path, device=config.device, bf16=config.bf16)
        measured = copy.copy(sim)  # the same yardsticks on this model's own embeddings (a full tier fine-tunes the encoder)
        measured.x = {id(g): scorer.embed(g["prompt"], [r["text"] for r in g["replies"]]) for g in sim.heldout}
        figures = measured.measure(scorer.ensemble, random.Random("tier-eval"))
    return {"pairs": len(pairs), "rm_judge_agreement": round(figures["rm_judge_agreement"], 3),
            "win_rate_noiseless": round(figures["win_rate_noiseless"], 3), "fit_seconds": round(wall, 1), "fit_cpu_seconds": round(cpu, 1)}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", default="bench.judges:judge", help="module:callable, found on PYTHONPATH")
    parser.add_argument("--quick", action="store_true", help="the quick pool (40 train / 24 held-out prompts)")
    parser.add_argument("--labels", type=int, default=500, help="random pairs labelled by one noisy draw each")
    parser.add_argument("--tiers", default="fast,full")
    parser.add_argument("--full-epochs", default="1,3", help="comma-separated epochs of the full tier's fine-tuning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    args.tiers = [t for t in args.tiers.split(",") if t]
    if unknown := set(args.tiers) - {"fast", "full"}:
        parser.error(f"unknown tiers: {sorted(unknown)}")
    args.full_epochs = [int(e) for e in args.full_epochs.split(",") if e]
    if args.labels < 1 or not args.full_epochs or min(args.full_epochs) < 1:
        parser.error("--labels and every --full-epochs value must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    judge = load_judge(args.judge)
    p = pool_args(["--quick"] if args.quick else [])
    pool, pool_path = load_or_generate(pool_spec(p), log=lambda m: print(m, flush=True))
    config = FitConfig(backbone=default_reward_backbone(), validation_fraction=0.0, device="cpu", bf16=False, seed=args.seed)
    sim = Simulation(pool, {}, judge, p, config)
    sets = {f"{args.labels} noisy labels": preference_pairs(sim, noisy_labels(sim, args.labels, args.seed)),
            "every train pair, noiseless": preference_pairs(sim, sim.every_pair(None))}
    rows = []
    for name, pairs in sets.items():
        for tier in args.tiers:
            for epochs in args.full_epochs if tier == "full" else [None]:
                tier_config = replace(config, tier=tier, full_epochs=epochs or config.full_epochs)
                row = {"training": name, "tier": tier, "full_epochs": epochs, **measure_fit(sim, pairs, tier_config)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"pool": pool_path.name, "judge": args.judge, "heldout_pairs": len(sim.eval_pairs), "rows": rows,
              "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"}
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
