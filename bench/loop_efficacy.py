"""Does the loop learn? The whole studio, driven over HTTP by simulated raters who answer with a judge it never sees.

Per strategy (``--strategies``, each in a fresh scratch studio, the same seed and budget): the
real studio (``manage.py serve``: web, every Celery worker, beat; SQLite and its own Redis in a
scratch folder) imports Bitext requests as prompts — the ``instruction`` column only; the
reference replies stay with the judge — and ``--raters`` rater threads loop ``next`` → judge →
``label`` through the API, arena comparisons included, until a round's labels are spent. The
studio does the rest by itself: supply (the active policy's candidates, the strategy's pair), a
reward refit every round (``REFIT_EVERY_N_LABELS``), a DPO policy update every
``--policy-every`` labels (``POLICY_EVERY_N_LABELS``: on-policy pairs, gates, promotion), swaps.
After each round the bench waits for the runs to finish and measures, as a researcher would:

- ``rm_judge_agreement``: the serving reward model (``/score``) against the judge's noiseless
  preference on held-out reply pairs: ``--heldout-samples`` base-policy replies to each held-out
  request, every pair the judge does not score equal. ``judge_self_agreement``: two noisy draws
  of the judge on the same pairs, the ceiling a noisy rater sets.
- ``win_rate_vs_base``: the active policy as served (``/policies/{name}/generate/`` in its
  serving mode) against the base policy's reply, by the judge's noiseless preference on each
  held-out request (win 1, tie ½), with a 95% Wilson interval; ``tiers`` has the same figure
  per serving mode ("sample": the trained weights alone; "rerank": best of n by the reward model).
  Measured when the active policy or reward model changed (and always in the last round).
- ``mean_judge_score`` of the served replies, ``truncated_share`` of the replies raters were
  shown, and ``seconds`` per stage.

Held-out requests are never imported, so no reference reply, held-out prompt or judge score
reaches training. ``--judge module:callable`` swaps the judge (see bench/judges.py).
``--ai-feedback reward-model|shorter`` turns the studio's AI feedback on with one of its own
judges (see bench/ai_feedback.py): ``labels_ai`` counts its labels, and the run ends with each
judge's audit beside its true agreement with the raters' judge.

    .venv/bin/python -m bench.loop_efficacy --quick --json bench/out/loop_efficacy_quick.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.ai_feedback import KINDS as AI_KINDS
from bench.ai_feedback import ChatStub, ai_env, judge_setup, judges_report, labels_ai, print_judges, shorter_answer
from bench.candidate_pool import DEFAULT_DATA, PoolSpec, read_requests, split_requests
from bench.judges import Judge, load_judge, measured_self_agreement, noiseless
from bench.loop_report import parse_time, print_round, win_rate
from bench.served import Api, ApiError, ServedStudio

STRATEGIES = ("random", "uncertain", "thompson")
GENERATE_CHUNK = 8  # prompts per generate request: each is one batch in the score worker
QUICK = {"labels": 60, "round_labels": 30, "policy_every": 60, "train_prompts": 120, "heldout": 16, "heldout_samples": 2, "dpo_steps": 8, "evaluate": "policy"}


@dataclass
class Round:
    labels_human: int
    labels_ai: int = 0
    rm_judge_agreement: float | None = None
    judge_self_agreement: float | None = None
    policy: str | None = None
    serving_mode: str | None = None
    reward_model: str | None = None
    win_rate_vs_base: float | None = None
    win_rate_ci: list[float] | None = None
    tiers: dict[str, dict] = field(default_factory=dict)
    mean_judge_score: float | None = None
    truncated_share: float | None = None
    comparisons_shown: int = 0
    runs: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class Raters:
    """``n`` rater threads labelling through the API with the judge; ``spend(k)`` runs them until k more labels are in."""

    def __init__(self, base: str, tokens: list[str], judge: Judge, seed: int) -> None:
        self.apis = [Api(base, token, timeout=120) for token in tokens]
        self.judge, self.seed = judge, seed
        self.lock = threading.Lock()
        self.labels = 0
        self.shown: list[bool] = []  # per reply shown: truncated
        self.wait_seconds = 0.0

    def spend(self, k: int, *, timeout: float) -> None:
        target = self.labels + k
        deadline = time.monotonic() + timeout
        threads = [threading.Thread(target=self._work, args=(api, target, deadline, random.Random(self.seed * 1000 + i + self.labels)))
                   for i, api in enumerate(self.apis)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.labels < target:
            raise SystemExit(f"only {self.labels} of {target} labels within {timeout:g} s: the supply could not keep up")

    def _work(self, api: Api, target: int, deadline: float, rng: random.Random) -> None:
        while time.monotonic() < deadline:
            with self.lock:
                if self.labels >= target:
                    return
            started = time.monotonic()
            response = api.call("GET", "comparisons/next/", ok=(200, 204))
            if response.status_code == 204:  # the supply is still generating
                time.sleep(1.0)
                with self.lock:
                    self.wait_seconds += time.monotonic() - started
                continue
            item = response.json()
            with self.lock:
                if self.labels >= target:  # another thread took the last label: give the lease back
                    api.call("POST", f"comparisons/{item['id']}/skip/", ok=(200, 201, 204, 409))
                    return
                self.labels += 1
            choice, strength = self.judge(item["prompt"], item["left"]["text"], item["right"]["text"], rng)
            side = {"a": "left", "b": "right"}.get(choice, choice)
            api.call("POST", f"comparisons/{item['id']}/label/", json={"choice": side, "strength": strength}, ok=(200, 201))
            with self.lock:
                self.shown += [item["left"]["truncated"], item["right"]["truncated"]]


class LoopRun:
    """One strategy's loop in one scratch studio."""

    def __init__(self, args: argparse.Namespace, strategy: str, judge: Judge, train: list[str], heldout: list[str],
                 on_round: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.args, self.strategy, self.judge, self.train, self.heldout = args, strategy, judge, train, heldout
        self.on_round = on_round  # called with the run so far after every round
        self.prefer = noiseless(judge)
        self.judge_url = ""  # the wrong-on-purpose judge's endpoint, while it runs
        target = getattr(judge, "wrapped", judge)
        self.judge_score: Callable[[str, str], float] | None = getattr(target, "score", None)
        if self.judge_score is None and getattr(target, "__module__", None) == "bench.judges":
            from bench.judges import default_judge

            self.judge_score = default_judge().score

    def env(self) -> dict[str, str]:
        a = self.args
        candidates = a.candidates or (2 if self.strategy == "random" else 4)
        return {
            "SELECTION_STRATEGY": self.strategy, "SUPPLY_CANDIDATES": str(candidates), "SUPPLY_OPEN_TARGET": str(2 * a.raters),
            "SUPPLY_BATCH_PROMPTS": str(2 * a.raters), "REFIT_EVERY_N_LABELS": str(a.round_labels),
            "POLICY_EVERY_N_LABELS": str(a.policy_every), "POLICY_AFTER_REWARD_PROMOTION": "0",
            "DPO_MAX_STEPS": str(a.dpo_steps), "DPO_ONLINE_PROMPTS": str(a.dpo_online_prompts), "DPO_EVAL_PROMPTS": str(a.dpo_eval_prompts),
            "DPO_LEARNING_RATE": str(a.dpo_learning_rate), "GENERATE_TIMEOUT_SECONDS": "1800", "TORCH_THREADS": str(a.threads),
            "THROTTLE_GENERATE_RATE": "1000/minute", "THROTTLE_SCORE_RATE": "6000/minute", "LABELS_PER_COMPARISON": "1",
            "TRAINING_HEARTBEAT_TIMEOUT": "900", **ai_env(a.ai_feedback, url=self.judge_url), **dict(item.split("=", 1) for item in a.env),
        }

    def run(self) -> dict[str, Any]:
        if self.args.ai_feedback != "shorter":
            return self.run_studio()
        with ChatStub(shorter_answer) as stub:  # the wrong-on-purpose judge, reached as any remote judge
            self.judge_url = stub.url
            return self.run_studio()

    def run_studio(self) -> dict[str, Any]:
        a = self.args
        with ServedStudio(f"loop-{self.strategy}-", env=self.env(), keep=a.keep, serve_args=["--default-concurrency", "1"]) as studio:
            tokens = [studio.user(f"rater{i}", "rater") for i in range(a.raters)]
            researcher = studio.user("researcher", "researcher")
            admin = Api("", studio.user("admin", "admin"))
            judge_setup(a.ai_feedback, admin_username="admin", threshold=a.ai_threshold)
            studio.start()
            admin.base = studio.base
            self.api = Api(studio.base, researcher)
            admin.post("prompts/", [{"prompt": text, "tags": ["bitext"]} for text in self.train])
            raters = Raters(studio.base, tokens, self.judge, a.seed)
            started = time.monotonic()
            self.heldout_base, self.pairs, setup_seconds = self.heldout_replies()
            rng = random.Random(a.seed)
            self_agreement = measured_self_agreement(self.judge, self.pairs, rng) if self.pairs else None
            rounds, seen_runs, measured = [], set(), None
            while raters.labels < a.labels:
                t0, wait0, shown0 = time.monotonic(), raters.wait_seconds, len(raters.shown)
                raters.spend(min(a.round_labels, a.labels - raters.labels), timeout=a.round_timeout)
                r = Round(labels_human=raters.labels, labels_ai=labels_ai(), judge_self_agreement=self_agreement)
                r.seconds = {"labeling": time.monotonic() - t0, "supply_wait": (raters.wait_seconds - wait0) / a.raters}
                t1 = time.monotonic()
                r.runs = self.wait_for_runs(seen_runs)
                r.seconds["training_wait"] = time.monotonic() - t1
                for kind in ("refit", "policy_update"):
                    r.seconds[kind] = sum(run["seconds"] for run in r.runs if run["stage"] == kind)
                shown = raters.shown[shown0:]
                r.comparisons_shown, r.truncated_share = len(shown) // 2, (sum(shown) / len(shown) if shown else None)
                t2 = time.monotonic()
                r.rm_judge_agreement, r.reward_model = self.agreement()
                r.seconds["swap"] = self.swap_seconds(r.runs)
                r.policy = self.active_policy()
                now = (r.policy, r.reward_model) if a.evaluate == "changes" else r.policy
                if a.evaluate != "none" and ((a.evaluate != "last" and now != measured) or raters.labels >= a.labels):
                    self.evaluate(r)
                    measured = now
                for run in r.runs:  # a trained version its gate kept out of service: judged too, as the trained tier alone
                    if run["kind"] == "policy_dpo" and run["status"] == "succeeded" and not run["promoted"] and a.evaluate not in ("last", "none"):
                        replies, _ = self.generate(run["version"], self.heldout, seed=a.seed + 101, mode="sample")
                        r.tiers[f"{run['version']} (not promoted)"] = self.judged(replies)
                r.seconds["evaluation"] = time.monotonic() - t2
                r.seconds = {k: round(v, 1) for k, v in r.seconds.items()}
                rounds.append(r)
                print_round(r)
                if self.on_round is not None:
                    self.on_round({"strategy": self.strategy, "rounds": [x.__dict__ for x in rounds], "partial": True})
            judges = judges_report(self.api.get("stats/judges/")["data"], self.prefer, [run for r in rounds for run in r.runs])
            print_judges(judges)
            tracebacks = studio.tracebacks()
            return {"strategy": self.strategy, "rounds": [r.__dict__ for r in rounds], "judges": judges, "setup_seconds": round(setup_seconds, 1),
                    "total_seconds": round(time.monotonic() - started, 1), "tracebacks": tracebacks[:20]}

    def generate(self, policy: str, prompts: list[str], *, seed: int, mode: str | None = None) -> tuple[list[str], str]:
        """Return one reply per prompt from ``policy`` (in ``mode``, default its serving mode) and the mode used."""
        replies, used = [], mode or "sample"
        for begin in range(0, len(prompts), GENERATE_CHUNK):
            body = {"prompts": [{"prompt": p} for p in prompts[begin:begin + GENERATE_CHUNK]], "seed": seed}
            if mode:
                body["mode"] = mode
            answer = self.api.post(f"policies/{policy}/generate/", body, retries=30)
            replies += answer["replies"]
            used = answer.get("mode", used)
        return replies, used

    def heldout_replies(self) -> tuple[list[str], list[tuple[str, str, str]], float]:
        """Return the base policy's reply per held-out request, the held-out pairs the judge does not tie, and the seconds taken."""
        started = time.monotonic()
        deadline = time.monotonic() + 900
        while True:  # the base policy is written by the first supply round
            try:
                samples = [self.generate("policy-base", self.heldout, seed=s, mode="sample")[0] for s in range(self.args.heldout_samples)]
                break
            except ApiError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(5)
        pairs = []
        for k, prompt in enumerate(self.heldout):
            texts = [s[k] for s in samples]
            for i in range(len(texts)):
                for j in range(i + 1, len(texts)):
                    if self.prefer(prompt, texts[i], texts[j]) in ("a", "b"):
                        pairs.append((prompt, texts[i], texts[j]))
        return samples[0], pairs, time.monotonic() - started

    def wait_for_runs(self, seen: set[int]) -> list[dict]:
        """Wait until no training run is queued or running (the round's refit may take a moment to be asked); return the new finished runs."""
        time.sleep(3)
        idle_since = None
        deadline = time.monotonic() + self.args.round_timeout
        while time.monotonic() < deadline:
            runs = self.api.get("training-runs/")
            if any(run["status"] in ("queued", "running") for run in runs):
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 4:
                break
            time.sleep(2)
        finished = []
        for run in sorted(runs, key=lambda run: run["id"]):
            if run["id"] in seen or run["status"] not in ("succeeded", "failed"):
                continue
            seen.add(run["id"])
            seconds = (parse_time(run["finished_at"]) - parse_time(run["started_at"])) if run["started_at"] else 0.0
            finished.append({"id": run["id"], "kind": run["kind"], "status": run["status"], "seconds": round(seconds, 1),
                             "stage": "policy_update" if run["kind"] == "policy_dpo" else "refit", "finished_at": run["finished_at"],
                             "promoted": run["metrics"].get("promoted"), "error": run["error"][:200],
                             "version": run["policy_version"] or run["reward_model_version"],
                             "metrics": {k: run["metrics"].get(k) for k in ("win_rate_vs_parent", "n_human_pairs", "n_online_pairs", "steps",
                                                                             "seconds_per_step", "dpo_loss", "mean_reply_tokens",
                                                                             "kl_to_base", "val_accuracy", "n_train", "gate", "paused_for_refits")
                                                    if k in run["metrics"]}})
        return finished

    def agreement(self) -> tuple[float | None, str | None]:
        """Return the serving reward model's agreement with the judge on the held-out pairs, and its name."""
        agree, name = 0, None
        for prompt, a, b in self.pairs:
            try:
                answer = self.api.post("score/", {"prompt": prompt, "responses": [a, b]}, retries=1)
            except ApiError as exc:
                if exc.status == 503:  # no reward model yet
                    return None, None
                raise
            name = answer["reward_model_version"]
            first, second = answer["rewards"]
            agree += (first > second) == (self.prefer(prompt, a, b) == "a")
        return (agree / len(self.pairs) if self.pairs else None), name

    def swap_seconds(self, runs: list[dict]) -> float:
        """Return the seconds from the last promoted run's finish to now (the swap is done when ``agreement`` scored with it)."""
        promoted = [run for run in runs if run["promoted"]]
        return max(0.0, time.time() - parse_time(promoted[-1]["finished_at"])) if promoted else 0.0

    def active_policy(self) -> str:
        """Return the active policy's name (the arena standings list every version)."""
        versions = self.api.get("stats/arena/")["data"]["versions"]
        return next((v["name"] for v in versions if v["status"] == "active"), "policy-base")

    def evaluate(self, r: Round) -> None:
        """Judge the active policy's replies to the held-out requests against the base policy's: as served, then in the other mode."""
        for mode in (None, "sample", "rerank"):
            if mode in r.tiers or (mode is not None and not self.args.all_tiers) or (mode == "rerank" and r.reward_model is None):
                continue
            replies, used = self.generate(r.policy, self.heldout, seed=self.args.seed + 101, mode=mode)
            if mode is None:
                r.serving_mode = used
            r.tiers[used] = self.judged(replies)
        served = r.tiers.get(r.serving_mode) or next(iter(r.tiers.values()), None)
        if served:
            r.win_rate_vs_base, r.win_rate_ci, r.mean_judge_score = served["win_rate"], served["ci"], served.get("mean_judge_score")

    def judged(self, replies: list[str]) -> dict[str, Any]:
        """Return the judge's win rate of ``replies`` (one per held-out request) over the base policy's, their mean score and length."""
        tier = win_rate(self.prefer, self.heldout, replies, self.heldout_base)
        if self.judge_score is not None:
            tier["mean_judge_score"] = sum(map(self.judge_score, self.heldout, replies)) / len(replies)
        tier["mean_reply_chars"] = sum(map(len, replies)) / len(replies)
        return tier


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"a small budget: {QUICK}")
    p.add_argument("--labels", type=int, default=500, help="the label budget")
    p.add_argument("--round-labels", type=int, default=50, help="labels per round (a refit after each)")
    p.add_argument("--policy-every", type=int, default=100, help="POLICY_EVERY_N_LABELS (0: no policy updates)")
    p.add_argument("--strategies", default="uncertain", help=f"comma-separated, from {', '.join(STRATEGIES)}")
    p.add_argument("--raters", type=int, default=4)
    p.add_argument("--train-prompts", type=int, default=600, help="Bitext requests imported as prompts")
    p.add_argument("--heldout", type=int, default=32, help="held-out Bitext requests (never imported)")
    p.add_argument("--heldout-samples", type=int, default=2, help="base replies per held-out request (pairs for the agreement)")
    p.add_argument("--candidates", type=int, default=0, help="SUPPLY_CANDIDATES (0: 2 for random, else 4)")
    p.add_argument("--dpo-steps", type=int, default=16)
    p.add_argument("--dpo-online-prompts", type=int, default=8)
    p.add_argument("--dpo-eval-prompts", type=int, default=8)
    p.add_argument("--dpo-learning-rate", type=float, default=2e-4)
    p.add_argument("--evaluate", choices=("changes", "policy", "last", "none"), default="changes",
                   help="judge the served policy when the policy or reward model changed, when the policy changed, in the last round only, or never")
    p.add_argument("--all-tiers", action=argparse.BooleanOptionalAction, default=True, help="judge every serving mode, not only the served one")
    p.add_argument("--judge", default="bench.judges:judge", help="module:callable (see bench/judges.py)")
    p.add_argument("--ai-feedback", choices=AI_KINDS, default="off", help="the studio judge that routes comparisons (see bench/ai_feedback.py)")
    p.add_argument("--ai-threshold", type=float, default=0.8, help="that judge's confidence threshold (the studio's default 0.8)")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--round-timeout", type=float, default=3600)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the studio (repeatable)")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the scratch folders (logs, database, models)")
    args = p.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    unknown = set(args.strategies.split(",")) - set(STRATEGIES)
    if unknown:
        p.error(f"unknown strategies: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    judge = load_judge(args.judge)
    spec = PoolSpec(data=args.data, train_prompts=args.train_prompts, heldout_prompts=args.heldout, seed=args.seed)
    train, heldout = split_requests(read_requests(args.data), spec)
    train, heldout = [text for text, _ in train], [text for text, _ in heldout]
    report = {"judge": args.judge, "seed": args.seed, "labels": args.labels, "args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    def write(runs: list[dict]) -> None:  # after every round too, so a stopped run leaves its figures
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({**report, "runs": runs} if len(runs) > 1 else runs[0], indent=1))
    for strategy in args.strategies.split(","):
        print(f"== {strategy}: {args.labels} labels, {len(train)} prompts, {len(heldout)} held out", flush=True)
        done = list(report["runs"])
        result = LoopRun(args, strategy, judge, train, heldout,
                         on_round=lambda partial: write(done + [{"judge": args.judge, "seed": args.seed, **partial}])).run()
        report["runs"].append({"judge": args.judge, "seed": args.seed, **result})
        write(report["runs"])
    for run in report["runs"]:
        last = run["rounds"][-1]
        print(f"{run['strategy']}: {last['labels_human']} labels, win rate vs base {last['win_rate_vs_base']} {last['win_rate_ci']}, "
              f"agreement {last['rm_judge_agreement']}, tiers {[(m, t['win_rate']) for m, t in last['tiers'].items()]}, "
              f"{run['total_seconds']} s; tracebacks in the logs: {len(run['tracebacks'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
