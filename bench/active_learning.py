"""Pool-based active learning on real preference labels: random against each selection strategy.

Run from the project root:

    .venv/bin/python -m bench.active_learning --json bench/out/active_learning.json
    .venv/bin/python -m bench.active_learning --budget 200 --seeds 1 --test-size 200   # a quick look

The dataset's label plays the rater. The pairs are split once by ``--split-seed`` (the same
shuffle as ``bench.reward_accuracy``, test first) into a held-out test set of ``--test-size``
pairs and a pool. The learner is the fast tier: every (prompt, reply) of the file is embedded
once with the frozen backbone (cached under ``--cache-dir``, a scratch folder by default), and
``fit_ensemble`` refits K bootstrap heads from scratch after every round, with the heads'
settings of ``FitConfig`` (nothing here is tuned, and the test pairs are only ever scored).

Per seed, every strategy starts from the same ``--seed-size`` random labels and the same
presentation order, then asks for ``--round-size`` labels a round until ``--budget`` labels are
used; after each fit the test accuracy is recorded against the labels used. A query reveals the
dataset's label of that pair and adds it to the training set.

The strategies of ``rm_trainer.selection`` choose among the candidates of one prompt; here each
prompt has exactly two, so the choice is which pool pairs to ask about. The learner sees each
unlabelled pair as replies A and B in a random order fixed per seed (not as chosen/rejected),
and the ensemble's member rewards R [K, 2] of (A, B):

- ``uncertain``: the BALD score of each pair from ``selection.pair_scores``; pairs are taken in
  order of score, and, as the module's diversity rule does within a prompt, a pair is skipped
  when its contrast ``e_A - e_B`` has |cosine| above ``SelectionConfig().diversity`` with that of
  a pair already taken this round (the shortfall, if any, is filled with the best skipped ones).
- ``thompson``: double Thompson sampling draws one member for the first candidate and another
  for the second, and asks when their favourites differ. With two candidates that is
  query-by-committee with two sampled members: per pair and round, draw members k1 and k2
  independently; pairs whose two members prefer different replies come first, ordered by how
  far apart they are, |d_k1 - d_k2| with d = R[:, A] - R[:, B]; the rest follow in that order.
- ``best_vs_worst``: the pairs of largest |mean reward gap| (the ones the model is surest of;
  a baseline expected to do poorly).
- ``random``: uniformly among the unlabelled pairs.

Every rule is symmetric in A and B, so the random order guards the protocol rather than
changing any choice. Each round also records the mean BALD score of the queried pairs, so the
strategies can be compared by how informative their pairs were.

The summary gives random's mean accuracy at the budget and, per strategy, the fewest labels at
which its mean curve (over seeds) reaches it, as a fraction of the budget (the goal: ≤ 70%);
random's own fraction shows how flat its curve is, i.e. how much of that figure is noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.reward_accuracy import read_pairs
from rm_trainer.config import FitConfig, SelectionConfig, default_reward_backbone
from rm_trainer.embeddings import EmbeddingCache, PairEncoder, embed_cached
from rm_trainer.ensemble import RewardEnsemble, fit_ensemble
from rm_trainer.evaluate import length_baseline, pairwise_metrics
from rm_trainer.selection import pair_scores

STRATEGIES = ("random", "uncertain", "thompson", "best_vs_worst")
GOAL_FRACTION = 0.70


def fit_heads(x_chosen: np.ndarray, x_rejected: np.ndarray, index: np.ndarray, config: FitConfig, seed: int) -> RewardEnsemble:
    """Return the fast tier's ensemble fitted to the labelled pairs ``index``, with the product's head settings."""
    return fit_ensemble(
        x_chosen[index], x_rejected[index], members=config.ensemble_size, hidden=config.head_hidden,
        epochs=config.epochs, patience=config.patience, batch_size=config.batch_size,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, seed=seed,
    )


def test_metrics(ensemble: RewardEnsemble, x_chosen: np.ndarray, x_rejected: np.ndarray) -> dict[str, float]:
    """Return accuracy and log-loss of the ensemble's mean reward on the test pairs."""
    diffs = ensemble.member_rewards(x_chosen).mean(0) - ensemble.member_rewards(x_rejected).mean(0)
    metrics = pairwise_metrics(diffs)
    return {"accuracy": metrics["accuracy"], "loss": metrics["loss"]}


def bald_scores(rewards_a: np.ndarray, rewards_b: np.ndarray) -> np.ndarray:
    """Return the BALD score of each pair from member rewards [K, M] of its replies A and B."""
    return np.array([pair_scores(np.stack([rewards_a[:, m], rewards_b[:, m]], 1))[0, 1] for m in range(rewards_a.shape[1])])


def choose(
    strategy: str, k: int, rewards_a: np.ndarray, rewards_b: np.ndarray, bald: np.ndarray,
    directions: np.ndarray, diversity: float, rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Return the positions (into the unlabelled pairs) of the ``k`` to query, and how many pairs diversity skipped."""
    gap = rewards_a - rewards_b  # [K, M]
    if strategy == "random":
        return rng.choice(gap.shape[1], size=k, replace=False), 0
    if strategy == "best_vs_worst":
        return np.argsort(-np.abs(gap.mean(0)), kind="stable")[:k], 0
    if strategy == "thompson":
        members = rng.integers(gap.shape[0], size=(2, gap.shape[1]))
        first, second = np.take_along_axis(gap, members, 0)
        disagree = np.sign(first) != np.sign(second)
        return np.lexsort((-np.abs(first - second), ~disagree))[:k], 0
    if strategy == "uncertain":
        return diverse_top(np.argsort(-bald, kind="stable"), k, directions, diversity)
    raise ValueError(f"unknown strategy {strategy!r}")


def diverse_top(order: np.ndarray, k: int, directions: np.ndarray, diversity: float) -> tuple[np.ndarray, int]:
    """Return the first ``k`` of ``order`` whose contrast is not redundant with one already taken, and the skip count."""
    taken: list[int] = []
    skipped: list[int] = []
    for m in order:
        if len(taken) == k:
            break
        if taken and float(np.abs(directions[taken] @ directions[m]).max()) > diversity:
            skipped.append(int(m))
        else:
            taken.append(int(m))
    taken += skipped[: k - len(taken)]
    return np.asarray(taken), len(skipped)


def simulate(
    strategy: str, seed: int, pool: np.ndarray, swap: np.ndarray, initial: np.ndarray, x: dict[str, np.ndarray],
    test: np.ndarray, args, config: FitConfig,
) -> list[dict[str, Any]]:
    """Run one strategy from the seed set to the budget; return a row per fit."""
    rng = np.random.default_rng([seed, STRATEGIES.index(strategy)])
    x_a = np.where(swap[:, None], x["rejected"], x["chosen"])  # what the learner sees, per pair of the file
    x_b = np.where(swap[:, None], x["chosen"], x["rejected"])
    norms = np.linalg.norm(x_a - x_b, axis=1, keepdims=True)
    directions = (x_a - x_b) / np.where(norms > 0, norms, 1.0)
    diversity = SelectionConfig().diversity
    labelled = list(initial)
    unlabelled = np.setdiff1d(pool, initial)
    rows, batch_bald, skipped = [], None, 0
    while True:
        started = time.perf_counter()
        ensemble = fit_heads(x["chosen"], x["rejected"], np.asarray(labelled), config, seed)
        fit_seconds = time.perf_counter() - started
        rows.append({"labels": len(labelled), **test_metrics(ensemble, x["chosen"][test], x["rejected"][test]),
                     "epochs": ensemble.history["epochs"], "fit_seconds": round(fit_seconds, 3),
                     "queried_bald": batch_bald, "diversity_skips": skipped})
        if len(labelled) >= args.budget:
            return rows
        k = min(args.round_size, args.budget - len(labelled))
        rewards_a = ensemble.member_rewards(x_a[unlabelled])
        rewards_b = ensemble.member_rewards(x_b[unlabelled])
        bald = bald_scores(rewards_a, rewards_b)
        picks, skipped = choose(strategy, k, rewards_a, rewards_b, bald, directions[unlabelled], diversity, rng)
        batch_bald = float(bald[picks].mean())
        labelled += unlabelled[picks].tolist()  # the query: the file's label decides which reply was chosen
        unlabelled = np.delete(unlabelled, picks)


def summarise(curves: dict[str, list[list[dict]]]) -> dict[str, Any]:
    """Return the mean curves, random's final accuracy, and each strategy's labels to reach it."""
    labels = [row["labels"] for row in curves["random"][0]]
    accuracy = {s: np.array([[row["accuracy"] for row in run] for run in runs]) for s, runs in curves.items()}
    random_final = float(accuracy["random"][:, -1].mean())
    summary: dict[str, Any] = {"labels": labels, "random_final_accuracy": random_final, "budget": labels[-1], "strategies": {}}
    for strategy, acc in accuracy.items():
        mean = acc.mean(0)
        reached = [n for n, a in zip(labels, mean) if a >= random_final - 1e-9]
        first = reached[0] if reached else None
        paired = (acc[:, 1:] - accuracy["random"][:, 1:]).mean(1)  # per seed, over the rounds after the seed set
        summary["strategies"][strategy] = {
            "mean": mean.tolist(),
            "std": (acc.std(0, ddof=1) if len(acc) > 1 else np.zeros_like(mean)).tolist(),
            "final_mean": float(mean[-1]),
            "labels_to_random_final": first,
            "fraction_of_budget": None if first is None else first / labels[-1],
            "goal_met": first is not None and first / labels[-1] <= GOAL_FRACTION,
            "mean_gain_over_random": float(paired.mean()),
            "mean_gain_over_random_per_seed": paired.tolist(),
            "mean_queried_bald": float(np.mean([r["queried_bald"] for run in curves[strategy] for r in run[1:]])),
        }
    return summary


def print_report(summary: dict, curves: dict, header: list[str], references: list[tuple[str, float]]) -> None:
    """Print the references, the accuracy-vs-labels table and the goal per strategy."""
    print("\n".join(header))
    for name, value in references:
        print(f"  {name:<58} {value:.3f}")
    strategies = list(curves)
    seeds = len(curves["random"])
    print(f"\ntest accuracy vs labels used (mean ± std over {seeds} seed{'s' * (seeds > 1)})")
    print(f"{'labels':>6} " + " ".join(f"{s:>15}" for s in strategies))
    for i, n in enumerate(summary["labels"]):
        cells = [f"{summary['strategies'][s]['mean'][i]:.3f} ± {summary['strategies'][s]['std'][i]:.3f}" for s in strategies]
        print(f"{n:>6} " + " ".join(f"{c:>15}" for c in cells))
    budget, final = summary["budget"], summary["random_final_accuracy"]
    print(f"\nrandom's mean accuracy at {budget} labels: {final:.3f}; goal: reach it with ≤ {GOAL_FRACTION:.0%} of {budget} labels")
    print(f"{'strategy':<14} {'final':>6} {'labels to reach':>15} {'fraction':>8} {'goal':>5} {'queried BALD':>12}  "
          "mean gain vs random over the rounds (per seed)")
    for s in strategies:
        row = summary["strategies"][s]
        reach = "never" if row["labels_to_random_final"] is None else str(row["labels_to_random_final"])
        fraction = "-" if row["fraction_of_budget"] is None else f"{row['fraction_of_budget']:.0%}"
        gains = ", ".join(f"{g:+.3f}" for g in row["mean_gain_over_random_per_seed"])
        goal = "(ref)" if s == "random" else ("met" if row["goal_met"] else "no")
        print(f"{s:<14} {row['final_mean']:>6.3f} {reach:>15} {fraction:>8} {goal:>5} {row['mean_queried_bald']:>12.4f}  "
              f"{row['mean_gain_over_random']:+.3f} ({gains})")


def write_json(path, data) -> None:
    """Write ``data`` as indented JSON to ``path``, making its folder first (a bench's ``--json``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2))


def cpu_name() -> str:
    """Return the CPU's model name where /proc/cpuinfo tells it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/hh-rlhf/harmless-base-test.jsonl.gz",
                        help="HH-style or TRL-style .jsonl / .jsonl.gz")
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--split-seed", type=int, default=0, help="the test/pool split (0: bench.reward_accuracy's test set)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per strategy, seeds 0..N-1")
    parser.add_argument("--seed-size", type=int, default=50, help="random labels before the first query")
    parser.add_argument("--round-size", type=int, default=50)
    parser.add_argument("--budget", type=int, default=1000, help="labels used at the end")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated; random is always run")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--backbone", default=None, help="encoder folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: a scratch folder, removed after)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    strategies = ["random"] + [s for s in args.strategies.split(",") if s and s != "random"]
    if unknown := set(strategies) - set(STRATEGIES):
        raise SystemExit(f"unknown strategies: {sorted(unknown)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    backbone = args.backbone or default_reward_backbone()
    config = FitConfig(backbone=backbone, max_length=args.max_length)
    started_all = time.perf_counter()

    pairs, skipped = read_pairs(args.data)
    order = np.random.default_rng(args.split_seed).permutation(len(pairs))
    test, pool = order[: args.test_size], order[args.test_size :]
    if args.seed_size > args.budget or args.budget > len(pool):
        raise SystemExit(f"need seed-size ≤ budget ≤ pool size; got {args.seed_size}, {args.budget}, {len(pool)}")

    started = time.perf_counter()
    encoder = PairEncoder.load(backbone, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        cache = EmbeddingCache(args.cache_dir or scratch, identity=encoder.identity, max_length=args.max_length)
        x = {side: embed_cached(encoder, cache, [p.prompt for p in pairs], [getattr(p, side) for p in pairs])
             for side in ("chosen", "rejected")}
    embed_seconds = time.perf_counter() - started
    print(f"embedded {2 * len(pairs)} (prompt, reply) texts in {embed_seconds:.0f} s", flush=True)

    references = [("length rule (pick the longer reply), test", length_baseline([pairs[i] for i in test])["accuracy"])]
    full_pool = [test_metrics(fit_heads(x["chosen"], x["rejected"], pool, config, seed), x["chosen"][test], x["rejected"][test])["accuracy"]
                 for seed in range(args.seeds)]
    references.append((f"fast tier on the whole pool ({len(pool)} labels), mean over seeds", float(np.mean(full_pool))))

    curves: dict[str, list[list[dict]]] = {s: [] for s in strategies}
    seconds: dict[str, float] = {s: 0.0 for s in strategies}
    for seed in range(args.seeds):
        rng = np.random.default_rng([args.split_seed, seed])
        initial = rng.choice(pool, size=args.seed_size, replace=False)
        swap = rng.random(len(pairs)) < 0.5  # the order in which the learner sees each pair's two replies
        for strategy in strategies:
            started = time.perf_counter()
            rows = simulate(strategy, seed, pool, swap, initial, x, test, args, config)
            seconds[strategy] += time.perf_counter() - started
            curves[strategy].append(rows)
            print(f"seed {seed} {strategy:<14} " + " ".join(f"{r['accuracy']:.3f}" for r in rows)
                  + f"  ({time.perf_counter() - started:.0f} s)", flush=True)

    summary = summarise(curves)
    header = [
        "",
        f"{Path(args.data).name}: {len(pairs)} pairs ({skipped} skipped); test {len(test)} (split seed {args.split_seed}; "
        f"binomial s.e. of one accuracy ≈ {0.5 / np.sqrt(len(test)):.3f}), pool {len(pool)}",
        f"seed set {args.seed_size}, rounds of {args.round_size}, budget {args.budget}, {args.seeds} seeds; "
        f"fast tier: {args.backbone or 'all-MiniLM-L6-v2'} frozen, K={config.ensemble_size} bootstrap heads, refit from scratch each round",
        f"machine: {cpu_name()}, {os.cpu_count()} CPUs, no GPU used, torch threads {torch.get_num_threads()}; "
        f"embedding {embed_seconds:.0f} s, simulation {time.perf_counter() - started_all - embed_seconds:.0f} s",
        "noise ceiling: human raters agree on about 63–77% of such pairs (../shared/data/README.md)",
    ]
    print_report(summary, curves, header, references)
    if args.json:
        write_json(args.json, {
            "setup": header, "args": vars(args), "references": dict(references), "full_pool_per_seed": full_pool,
            "seconds": {"embedding": embed_seconds, **seconds}, "summary": summary, "curves": curves,
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
