"""Selection strategies compared on one cached pool of base-policy candidates, labelled by an independent judge.

Run from the project root:

    .venv/bin/python -m bench.strategy_efficacy --quick --json bench/out/strategy_efficacy_quick.json
    .venv/bin/python -m bench.strategy_efficacy --labels 500 --seeds 3 --judge mypkg.judges:judge

The pool (``bench.candidate_pool``): Bitext requests split once into train prompts and held-out
prompts, ``--candidates`` samples of the real base policy (SmolLM2-135M-Instruct) per prompt,
plus one base reply per held-out prompt; generated once and cached under ``bench/out/``. Every
(prompt, reply) is embedded once with the reward model's frozen encoder (the fast tier).

Per seed and strategy (``random``, ``uncertain``, ``thompson`` of ``rm_trainer.selection``), as
the studio's supply does: ``--seed-size`` random labels first (the same for every strategy of
a seed), then rounds of ``--round-size`` train prompts (the same prompts for every strategy of
a seed and round), one pair per prompt chosen by ``select_pairs`` from the ensemble's member
rewards and the candidates' embeddings, each labelled by one noisy draw of the judge
("both_bad" labels are spent but teach nothing; ties are fitted as ties; the strength sets the
margin). A pair may be asked again in a later round (a second rater's vote). After every round
the fast tier is refit from scratch (``fit_ensemble`` with ``FitConfig``'s head settings) and
measured on the held-out prompts, which are never labelled:

- ``rm_judge_agreement``: the share of held-out candidate pairs (all pairs of a prompt's replies,
  base included; pairs the judge scores equal are left out) on which the sign of the mean
  reward difference equals the judge's noiseless preference;
- ``win_rate_vs_base``: best-of-n (the candidate of highest mean reward) against the base reply,
  ``--draws`` noisy judge draws per prompt (win 1, tie or both bad ½), with a 95% interval over
  prompts (normal approximation); ``win_rate_noiseless`` uses the judge's noiseless preference.

The summary gives random's mean final figure and the fewest labels at which each strategy's
mean curve reaches it (the issue's goal: ≤ 67% of the labels).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from typing import Any, Callable

import numpy as np
import torch

from bench.active_learning import cpu_name, write_json
from bench.candidate_pool import DEFAULT_DATA, OUT_DIR, PoolSpec, load_or_generate
from bench.judges import BitextJudge, calibrate_temperature, expected_self_agreement, load_judge, measured_self_agreement, noiseless
from rm_trainer.config import FitConfig, SelectionConfig, default_reward_backbone
from rm_trainer.data import DEFAULT_STRENGTH_MARGINS
from rm_trainer.embeddings import EmbeddingCache, PairEncoder, embed_cached
from rm_trainer.ensemble import fit_ensemble
from rm_trainer.selection import select_pairs

STRATEGIES = ("random", "uncertain", "thompson")
GOAL_FRACTION = 0.67
METRICS = ("win_rate_vs_base", "rm_judge_agreement")


def heldout_pairs(groups: list[dict], prefer: Callable) -> list[tuple[int, int, int, int]]:
    """Return (group, i, j, sign) for every held-out reply pair the judge does not score equal (sign +1: i preferred)."""
    pairs = []
    for g, group in enumerate(groups):
        texts = [r["text"] for r in group["replies"]]
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                choice = prefer(group["prompt"], texts[i], texts[j])
                if choice in ("a", "b"):
                    pairs.append((g, i, j, 1 if choice == "a" else -1))
    return pairs


class Simulation:
    """The pool's embeddings, the judge and the held-out yardsticks; ``run`` simulates one strategy and seed."""

    def __init__(self, pool: dict, x: dict[int, np.ndarray], judge: Callable, args, config: FitConfig) -> None:
        self.train = [g for g in pool["groups"] if g["split"] == "train"]
        self.heldout = [g for g in pool["groups"] if g["split"] == "heldout"]
        self.x, self.judge, self.args, self.config = x, judge, args, config
        self.prefer = noiseless(judge)
        self.eval_pairs = heldout_pairs(self.heldout, self.prefer)
        self.n = pool["spec"]["candidates"]

    def emb(self, group: dict) -> np.ndarray:
        """Return the embeddings [replies, dim] of a group."""
        return self.x[id(group)]

    def label(self, group: dict, i: int, j: int, rng: random.Random) -> dict:
        """Return one noisy judge label of replies i and j of a train group."""
        texts = [r["text"] for r in group["replies"]]
        choice, strength = self.judge(group["prompt"], texts[i], texts[j], rng)
        truncated = group["replies"][i]["truncated"] + group["replies"][j]["truncated"]
        return {"group": id(group), "i": i, "j": j, "choice": choice, "strength": strength, "truncated": truncated}

    def fit(self, labels: list[dict], seed: int):
        """Return the fast tier refit from scratch on the labels (both_bad dropped)."""
        used = [lab for lab in labels if lab["choice"] != "both_bad"]
        if not used:
            return None
        by_id = {id(g): g for g in self.train}
        sides = [label_sides(lab) for lab in used]
        chosen = np.stack([self.emb(by_id[lab["group"]])[first] for lab, (first, _, _, _) in zip(used, sides)])
        rejected = np.stack([self.emb(by_id[lab["group"]])[second] for lab, (_, second, _, _) in zip(used, sides)])
        tie = np.array([t for _, _, t, _ in sides])
        margin = np.array([m for _, _, _, m in sides])
        c = self.config
        return fit_ensemble(chosen, rejected, margin=margin if c.use_margin else None, tie=tie, members=c.ensemble_size,
                            hidden=c.head_hidden, epochs=c.epochs, patience=c.patience, batch_size=c.batch_size,
                            learning_rate=c.learning_rate, weight_decay=c.weight_decay, seed=seed)

    def rewards(self, ensemble, group: dict) -> np.ndarray:
        """Return member rewards [K, replies] of a group (zeros without a model)."""
        if ensemble is None:
            return np.zeros((1, len(group["replies"])))
        return ensemble.member_rewards(self.emb(group))

    def measure(self, ensemble, rng: random.Random) -> dict[str, Any]:
        """Return agreement with the judge on held-out pairs and best-of-n's judge win rate against the base reply."""
        means = [self.rewards(ensemble, g).mean(0) for g in self.heldout]
        agree = [np.sign(means[g][i] - means[g][j]) == s for g, i, j, s in self.eval_pairs]
        outcomes, noiseless_outcomes, scores = [], [], []
        for g, group in enumerate(self.heldout):
            texts = [r["text"] for r in group["replies"]]
            pick, base = texts[int(np.argmax(means[g][: self.n]))], texts[self.n]
            draws = []
            for _ in range(self.args.draws):
                flip = rng.random() < 0.5  # which side the pick is shown on
                choice, _ = self.judge(group["prompt"], base, pick, rng) if flip else self.judge(group["prompt"], pick, base, rng)
                won = "b" if flip else "a"
                draws.append(1.0 if choice == won else 0.5 if choice in ("tie", "both_bad") else 0.0)
            outcomes.append(sum(draws) / len(draws))
            exact = self.prefer(group["prompt"], pick, base)
            noiseless_outcomes.append(1.0 if exact == "a" else 0.0 if exact == "b" else 0.5)
            if hasattr(self.prefer, "__self__") and hasattr(self.prefer.__self__, "score"):
                scores.append(self.prefer.__self__.score(group["prompt"], pick))
        rate, half = mean_interval(outcomes)
        return {"rm_judge_agreement": float(np.mean(agree)) if agree else None, "win_rate_vs_base": rate,
                "win_rate_ci": [rate - half, rate + half], "win_rate_noiseless": float(np.mean(noiseless_outcomes)),
                "mean_judge_score": float(np.mean(scores)) if scores else None}

    def every_pair(self, rng: random.Random | None) -> list[dict]:
        """Return a label of every train pair: one noisy judge draw each from ``rng``, or without one the noiseless preference (strength 2)."""
        labels = []
        for g in self.train:
            texts = [r["text"] for r in g["replies"]]
            for i in range(len(texts)):
                for j in range(i + 1, len(texts)):
                    if rng is not None:
                        labels.append(self.label(g, i, j, rng))
                    else:
                        choice = self.prefer(g["prompt"], texts[i], texts[j])
                        labels.append({"group": id(g), "i": i, "j": j, "choice": choice, "strength": 2, "truncated": 0})
        return labels

    def ceiling(self, seed: int, *, noisy: bool) -> dict[str, Any]:
        """Return the held-out figures of the fast tier fit on every train pair, labelled once by the noisy judge or by its noiseless preference."""
        labels = self.every_pair(random.Random(f"ceiling-{seed}") if noisy else None)
        return {"labels": len(labels), **self.measure(self.fit(labels, seed), random.Random(f"eval-{seed}-ceiling"))}

    def run(self, strategy: str, seed: int) -> list[dict[str, Any]]:
        """Simulate one strategy from the seed labels to the budget; return a row per refit."""
        args = self.args
        seed_rng = random.Random(f"seed-{seed}")  # the same seed labels for every strategy
        labels = []
        for _ in range(args.seed_size):
            group = seed_rng.choice(self.train)
            i, j = seed_rng.sample(range(len(group["replies"])), 2)
            labels.append(self.label(group, i, j, seed_rng))
        judge_rng = random.Random(f"judge-{seed}-{strategy}")
        eval_rng = random.Random(f"eval-{seed}")
        rows, round_ = [], 0
        while True:
            started = time.perf_counter()
            ensemble = self.fit(labels, seed)
            fit_seconds = time.perf_counter() - started
            eval_rng.seed(f"eval-{seed}-{round_}")  # the same judge draws for every strategy's measurement
            rows.append({"labels": len(labels), **self.measure(ensemble, eval_rng), "fit_seconds": round(fit_seconds, 3),
                         "truncated_share": sum(lab["truncated"] for lab in labels) / (2 * len(labels)),
                         "both_bad_share": sum(lab["choice"] == "both_bad" for lab in labels) / len(labels)})
            if len(labels) >= args.labels:
                return rows
            round_ += 1
            k = min(args.round_size, args.labels - len(labels))
            batch = random.Random(f"round-{seed}-{round_}").sample(self.train, min(k, len(self.train)))
            rewards = [self.rewards(ensemble, g) for g in batch]
            chosen = select_pairs(rewards, SelectionConfig(strategy=strategy, seed=seed * 1000 + round_), [self.emb(g) for g in batch])
            labels += [self.label(g, p.i, p.j, judge_rng) for g, p in zip(batch, chosen) if p is not None]


def pool_spec(args: argparse.Namespace) -> PoolSpec:
    """Return the spec of the pool these arguments (``parse``'s, also for the benches that share its pool) describe."""
    return PoolSpec(data=args.data, train_prompts=args.train_prompts, heldout_prompts=args.heldout_prompts,
                    candidates=args.candidates, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)


def label_sides(label: dict) -> tuple[int, int, bool, float]:
    """Return (the chosen reply, the rejected reply, tie, margin) of a judge label that is not "both_bad"."""
    tie = label["choice"] == "tie"
    first, second = (label["j"], label["i"]) if label["choice"] == "b" else (label["i"], label["j"])
    return first, second, tie, 0.0 if tie else DEFAULT_STRENGTH_MARGINS[label["strength"] - 1]


def mean_interval(values: list[float]) -> tuple[float, float]:
    """Return the mean and the half-width of its 95% normal interval."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, float("nan")
    return mean, 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))


def summarise(curves: dict[str, list[list[dict]]]) -> dict[str, Any]:
    """Return per metric the mean curves, random's final mean and each strategy's labels to reach it."""
    labels = [row["labels"] for row in curves["random"][0]]
    summary: dict[str, Any] = {"labels": labels, "budget": labels[-1]}
    for metric in METRICS:
        values = {s: np.array([[row[metric] for row in run] for run in runs], dtype=float) for s, runs in curves.items()}
        final = float(values["random"][:, -1].mean())
        per = {}
        for strategy, v in values.items():
            mean = v.mean(0)
            reached = [n for n, m in zip(labels, mean) if m >= final - 1e-9]
            first = reached[0] if reached else None
            per[strategy] = {"mean": mean.tolist(), "sd": (v.std(0, ddof=1) if len(v) > 1 else np.zeros_like(mean)).tolist(),
                             "final_mean": float(mean[-1]), "labels_to_random_final": first,
                             "fraction_of_budget": None if first is None else first / labels[-1],
                             "goal_met": first is not None and first / labels[-1] <= GOAL_FRACTION}
        summary[metric] = {"random_final": final, "strategies": per}
    return summary


def print_report(summary: dict, header: list[str]) -> None:
    """Print the curves and the labels each strategy needs to reach random's final figure."""
    print("\n".join(header))
    strategies = list(summary["win_rate_vs_base"]["strategies"])
    for metric in METRICS:
        block = summary[metric]
        print(f"\n{metric} vs labels (mean ± sd over seeds)")
        print(f"{'labels':>6} " + " ".join(f"{s:>15}" for s in strategies))
        for k, n in enumerate(summary["labels"]):
            cells = [f"{block['strategies'][s]['mean'][k]:.3f} ± {block['strategies'][s]['sd'][k]:.3f}" for s in strategies]
            print(f"{n:>6} " + " ".join(f"{c:>15}" for c in cells))
        print(f"random's final {metric}: {block['random_final']:.3f}")
        for s in strategies:
            row = block["strategies"][s]
            reach = "never" if row["labels_to_random_final"] is None else f"{row['labels_to_random_final']} ({row['fraction_of_budget']:.0%})"
            goal = "(ref)" if s == "random" else "met" if row["goal_met"] else "not met"
            print(f"  {s:<10} final {row['final_mean']:.3f}; labels to reach random's final: {reach}; goal ≤ {GOAL_FRACTION:.0%}: {goal}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    judge = load_judge(args.judge)
    spec = pool_spec(args)
    started = time.perf_counter()
    pool, pool_path = load_or_generate(spec, device=args.device, log=lambda m: print(m, flush=True))
    seconds = {"pool": round(time.perf_counter() - started, 1), "generation_when_built": pool["seconds"]["generation"]}

    started = time.perf_counter()
    backbone = default_reward_backbone()
    config = FitConfig(backbone=backbone)
    encoder = PairEncoder.load(backbone, device="cpu")
    cache = EmbeddingCache(OUT_DIR / "strategy_embeddings", identity=encoder.identity, max_length=config.max_length)
    x = {id(g): embed_cached(encoder, cache, [g["prompt"]] * len(g["replies"]), [r["text"] for r in g["replies"]])
         for g in pool["groups"]}
    seconds["embedding"] = round(time.perf_counter() - started, 1)

    sim = Simulation(pool, x, judge, args, config)
    calibration = judge_calibration(sim, judge)
    owner = getattr(sim.prefer, "__self__", None)
    if args.calibrate and isinstance(owner, BitextJudge):
        before = owner.temperature
        owner.temperature = round(calibration["calibrated_temperature"], 4)
        calibration = {**judge_calibration(sim, judge), "temperature_before": before,
                       "measured_self_agreement_before": calibration["measured_self_agreement"]}
    print(f"judge self-agreement on {calibration['pairs']} real train candidate pairs: measured "
          f"{calibration['measured_self_agreement']:.3f}" + (f", expected {calibration['expected_self_agreement']:.3f} at T "
          f"{calibration['temperature']}, this pool calibrates to T {calibration['calibrated_temperature']:.4f}"
          if "temperature" in calibration else ""), flush=True)
    references = reference_rates(sim)
    curves: dict[str, list[list[dict]]] = {s: [] for s in args.strategies}
    started = time.perf_counter()
    for seed in range(args.seeds):
        for strategy in args.strategies:
            t0 = time.perf_counter()
            rows = sim.run(strategy, seed)
            curves[strategy].append(rows)
            print(f"seed {seed} {strategy:<10} win " + " ".join(f"{r['win_rate_vs_base']:.2f}" for r in rows)
                  + " | agree " + " ".join(f"{r['rm_judge_agreement']:.2f}" for r in rows)
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    seconds["simulation"] = round(time.perf_counter() - started, 1)
    summary = summarise(curves)
    if args.ceiling:  # what the fast tier's features can learn of this judge at all
        summary["ceiling"] = {kind: {metric: float(np.mean([row[metric] for row in rows])) for metric in ("labels", "rm_judge_agreement", "win_rate_noiseless")}
                              for kind, rows in (("noisy", [sim.ceiling(seed, noisy=True) for seed in range(args.seeds)]),
                                                 ("noiseless", [sim.ceiling(seed, noisy=False) for seed in range(args.seeds)]))}
        print(f"ceiling, every train pair labelled once: {summary['ceiling']}", flush=True)
    truncated = [r["truncated"] for g in pool["groups"] for r in g["replies"]]
    header = [
        "", f"pool {pool_path.name}: {len(sim.train)} train prompts × {spec.candidates} candidates, {len(sim.heldout)} held-out "
        f"prompts × {spec.candidates} + 1 base reply; max_new_tokens {spec.max_new_tokens}, temperature {spec.temperature}; "
        f"{np.mean(truncated):.1%} of replies hit the budget; {len(sim.eval_pairs)} held-out pairs for agreement",
        f"judge {args.judge}; self-agreement {calibration['measured_self_agreement']:.3f}; held-out references: "
        + ", ".join(f"{k} {v:.3f}" for k, v in references.items()),
        f"seed labels {args.seed_size}, rounds of {args.round_size}, budget {args.labels}, {args.seeds} seeds; fast tier "
        f"K={config.ensemble_size} heads on frozen all-MiniLM-L6-v2, refit from scratch each round",
        f"machine: {cpu_name()}, {os.cpu_count()} CPUs, generation on {pool['device']}, torch threads {torch.get_num_threads()}; "
        f"seconds {seconds}",
    ]
    print_report(summary, header)
    if args.json:
        write_json(args.json, {"setup": header, "args": vars(args), "judge_calibration": calibration, "references": references,
                               "seconds": seconds, "summary": summary, "curves": curves})
    return 0


def judge_calibration(sim: Simulation, judge: Callable) -> dict[str, Any]:
    """Return the judge's measured self-agreement on every train candidate pair (and, for a BitextJudge, its calibration)."""
    pairs = [(g["prompt"], g["replies"][i]["text"], g["replies"][j]["text"])
             for g in sim.train for i in range(len(g["replies"])) for j in range(i + 1, len(g["replies"]))]
    result: dict[str, Any] = {"pairs": len(pairs), "measured_self_agreement": measured_self_agreement(judge, pairs, random.Random(0))}
    owner = getattr(sim.prefer, "__self__", None)
    if isinstance(owner, BitextJudge):
        scores = [(owner.score(p, a), owner.score(p, b)) for p, a, b in pairs]
        result.update(temperature=owner.temperature, expected_self_agreement=expected_self_agreement(owner, scores),
                      calibrated_temperature=calibrate_temperature(owner, scores),
                      both_bad_share=float(np.mean([max(a, b) < owner.bad_floor for a, b in scores])))
    return result


def reference_rates(sim: Simulation) -> dict[str, float]:
    """Return noiseless held-out win rates against the base of a random candidate, the longest one and the judge's own best."""
    def rate(pick: Callable[[dict], str]) -> float:
        outcomes = []
        for g in sim.heldout:
            exact = sim.prefer(g["prompt"], pick(g), g["replies"][sim.n]["text"])
            outcomes.append(1.0 if exact == "a" else 0.0 if exact == "b" else 0.5)
        return float(np.mean(outcomes))

    owner = getattr(sim.prefer, "__self__", None)
    rates = {"first candidate (noiseless)": rate(lambda g: g["replies"][0]["text"]),
             "longest candidate (noiseless)": rate(lambda g: max((r["text"] for r in g["replies"][: sim.n]), key=len))}
    if isinstance(owner, BitextJudge):
        rates["judge's best of n (noiseless ceiling)"] = rate(
            lambda g: max((r["text"] for r in g["replies"][: sim.n]), key=lambda t: owner.score(g["prompt"], t)))
    return rates


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", default="bench.judges:judge", help="module:callable, found on PYTHONPATH")
    parser.add_argument("--data", default=DEFAULT_DATA, help="the Bitext CSV the requests come from")
    parser.add_argument("--quick", action="store_true", help="40 train / 24 held-out prompts, 150 labels in rounds of 25")
    parser.add_argument("--labels", type=int, default=None, help="label budget (default 500; --quick 150)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-size", type=int, default=None, help="random labels before the first choice (default: one round)")
    parser.add_argument("--round-size", type=int, default=None, help="labels per round (default 50; --quick 25)")
    parser.add_argument("--train-prompts", type=int, default=None, help="default 160; --quick 40")
    parser.add_argument("--heldout-prompts", type=int, default=None, help="default 64; --quick 24")
    parser.add_argument("--candidates", type=int, default=4, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=192, help="the studio's GENERATION_MAX_NEW_TOKENS")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--draws", type=int, default=4, help="noisy judge draws per held-out prompt for the win rate")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated; random is always run")
    parser.add_argument("--device", default="auto", help="generation device")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--calibrate", action="store_true",
                        help="refit the Bitext judge's temperature to 72.5%% self-agreement on this pool's train pairs first")
    parser.add_argument("--ceiling", action="store_true",
                        help="also fit the fast tier on every train pair (noisy and noiseless labels): what its features can learn of the judge")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    quick = {"labels": 150, "round_size": 25, "train_prompts": 40, "heldout_prompts": 24}
    full = {"labels": 500, "round_size": 50, "train_prompts": 160, "heldout_prompts": 64}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.seed_size is None:
        args.seed_size = args.round_size
    args.strategies = ["random"] + [s for s in args.strategies.split(",") if s and s != "random"]
    if unknown := set(args.strategies) - set(STRATEGIES):
        parser.error(f"unknown strategies: {sorted(unknown)}")
    return args


if __name__ == "__main__":
    sys.exit(main())
