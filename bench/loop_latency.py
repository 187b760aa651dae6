"""How fast the loop closes: from the Nth label to the new reward model serving, and generation rates.

Run from the project root:

    .venv/bin/python -m bench.loop_latency --labels 5000 --every 50 --json bench/out/loop_latency.json

In a scratch VAR_DIR (SQLite, MODEL_STORE) with its own Redis and real Celery workers (queue
"gpu" for training, queue "score" for serving), the bench imports ``--labels - --every``
labelled pairs from the real data in ../shared/data (HH-RLHF harmless-base, then Bitext
customer-service requests whose reference reply is preferred to another request's reply),
fits a first fast-tier model (cold: every text is embedded), then records ``--every`` more
labels through the labeling service with REFIT_EVERY_N_LABELS = ``--every``. The clock starts
when the last of those labels commits and stops when a scoring request, served by the score
worker, answers with the new version: the automatic trigger, the queue, the refit (warm:
only new texts are embedded), the promotion gate and the swap in another process, all in.
Then it reports the generator's tokens/s at batch 1 and batched (bench.generation_throughput).

With ``--during-dpo`` a worker for the "policy" queue starts too and, after the cold fit, a DPO
run (sized by ``--dpo-steps`` and ``--dpo-online-prompts``) trains through the timed rounds: each
round reports the run's phase as it began and ended, and a round during which it was not running
all along is marked so, not counted as one during DPO. The run is stopped when the rounds end.
The timed rounds begin once the run reports a phase (its reference pass or its steps), not
while it is still loading. ``--baseline-rounds K`` times K rounds first, before the DPO run
starts, in the same studio under the same load, and reports the two medians and their ratio.

With ``--campaigns K`` (K ≥ 2) the studio has K campaigns, each with its own reward-model line:
the labelled history is split between them, each gets its cold fit, and in every round ``--every``
labels go into each campaign one after the other, so all K refits are due at once and one "gpu"
worker serves them in turn. Each campaign's clock runs from its own last label to its own new
model serving; the round reports each campaign's latency and refit, the slowest, and the bound
stated in the README, (K + 1) × the longest refit of the round.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._workers import dpo_env, dpo_env_now, dpo_start, dpo_state, dpo_stop, policy_worker_env, worker_command

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def real_pairs(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Return n (prompt, chosen, rejected) from HH harmless-base, then Bitext requests."""
    sys.path.insert(0, str(ROOT))
    from rm_trainer.transcript import split_dialogues

    pairs = []
    with gzip.open(DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            try:
                prompt, chosen, rejected = split_dialogues(row["chosen"], row["rejected"])
            except ValueError:
                continue
            if chosen.strip() and rejected.strip() and chosen.strip() != rejected.strip():
                pairs.append((prompt, chosen, rejected))
    with open(DATA / "bitext-customer-support" / "customer_support_sample.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(seed)
    for row in rows:
        other = rng.choice([r for r in rows[:200] if r["intent"] != row["intent"]] or rows)
        pairs.append((row["instruction"], row["response"], other["response"]))
    if len(pairs) < n:
        raise SystemExit(f"only {len(pairs)} pairs in {DATA}; ask for fewer labels")
    return pairs[:n]


def side_by_side(rounds: list[dict]) -> dict | None:
    """Return the median label → serving seconds of the rounds before the DPO run and of those during it, and their ratio."""
    import statistics

    before = [r["seconds_label_to_serving"] for r in rounds if "during_dpo" not in r]
    during = [r["seconds_label_to_serving"] for r in rounds if r.get("during_dpo")]
    if not before or not during:
        return None
    a, b = statistics.median(before), statistics.median(during)
    return {"median_without_dpo": a, "median_during_dpo": b, "ratio": round(b / a, 2), "rounds": [len(before), len(during)]}


def dpo_wait_for_steps(run_id: int, *, timeout: float) -> None:
    """Wait until the DPO run reports a phase (its reference pass or its steps), so the timed rounds overlap its training."""
    from feedback_app.models import TrainingRun

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        run = TrainingRun.objects.get(pk=run_id)
        if run.status != TrainingRun.Status.RUNNING or (run.progress or {}).get("phase"):
            print(f"DPO run {run_id} is training: {dpo_state(run_id)[1]}", flush=True)
            return
        time.sleep(1)
    raise SystemExit(f"DPO run {run_id} reported no phase within {timeout:.0f} s")


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=5000, help="Labels in the database when the refit fires.")
    parser.add_argument("--every", type=int, default=50, help="REFIT_EVERY_N_LABELS.")
    parser.add_argument("--rounds", type=int, default=2, help="Warm refits to time.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--during-dpo", action="store_true", help="Time the rounds while a DPO run trains on its own worker.")
    parser.add_argument("--baseline-rounds", type=int, default=0,
                        help="With --during-dpo: rounds timed before the DPO run starts, for a ratio measured side by side in one run.")
    parser.add_argument("--dpo-steps", type=int, default=8, help="DPO_MAX_STEPS of that run (size it to outlast the rounds).")
    parser.add_argument("--dpo-online-prompts", type=int, default=8, help="DPO_ONLINE_PROMPTS of that run.")
    parser.add_argument("--campaigns", type=int, default=1, help="K campaigns whose refits are due at once, served in turn by one worker.")
    args = parser.parse_args()
    if args.campaigns > 1 and args.during_dpo:
        parser.error("--campaigns and --during-dpo are separate measurements")

    scratch = Path(tempfile.mkdtemp(prefix="loop-latency-"))
    sys.path.insert(0, str(ROOT))
    from feedback_app.devsupport import scratch_redis_start

    redis, redis_url = scratch_redis_start(scratch / "redis")
    (scratch / "secret_key").write_text("bench-only-secret-key-" + os.urandom(8).hex())
    env = {**os.environ, "VAR_DIR": str(scratch), "MODEL_STORE": str(scratch / "models"), "REDIS_URL": redis_url,
           "REFIT_EVERY_N_LABELS": str(args.every), "CELERY_TASK_ALWAYS_EAGER": "0", "SUPPLY_OPEN_TARGET": "0", "LOG_LEVEL": "WARNING",
           "DJANGO_SETTINGS_MODULE": "feedback_app.settings", **(dpo_env(args.dpo_steps, args.dpo_online_prompts) if args.during_dpo else {})}
    env.pop("DATABASE_URL", None)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"scratch folder (worker logs, kept): {scratch}", flush=True)
    workers, dpo = [], []
    try:
        result = run_campaigns(args, env, scratch, workers) if args.campaigns > 1 else run(args, env, scratch, workers, dpo)
    finally:
        if dpo:
            print(f"DPO run {dpo[0]} at the end: {dpo_stop(dpo[0])}", flush=True)
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()
        redis.terminate()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def run(args, env: dict, scratch: Path, workers: list, dpo: list) -> dict:
    from feedback_app import tasks
    from feedback_app.models import Role, TrainingRun
    from feedback_app.services.accounts import user_create
    from feedback_app.services.import_parsing import PreferenceRecord, PromptRecord
    from rm_trainer.transcript import text_as_turns
    from feedback_app.services.imports import preference_records_import, prompt_records_import
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next
    from feedback_app.services.training_runs import training_run_request

    def as_prompt(text: str) -> tuple[str, list]:
        turns = text_as_turns(text) if text.startswith("\n\nHuman:") else []
        return (turns[-1]["content"], turns[:-1]) if turns and turns[-1]["role"] == "user" else (text, [])

    total_rounds = args.baseline_rounds + args.rounds
    pairs = [(*as_prompt(p), c, r) for p, c, r in real_pairs(args.labels + args.every * total_rounds, args.seed)]
    history, fresh = pairs[: args.labels - args.every], pairs[args.labels - args.every : args.labels]
    t = time.perf_counter()
    preference_records_import(records=[PreferenceRecord(line=i, prompt=p, context=x, chosen=c, rejected=r)
                                       for i, (p, x, c, r) in enumerate(history, 1)], filename="bench", sha256="bench")
    prompt_records_import(records=[PromptRecord(line=i, prompt=p, context=x, responses=[c, r]) for i, (p, x, c, r) in enumerate(fresh, 1)],
                          filename="bench-open", sha256="bench-open", source="bench")
    print(f"imported {len(history)} labelled pairs and {len(fresh)} open comparisons in {time.perf_counter() - t:.1f} s", flush=True)

    python = sys.executable
    for queue in ("gpu", "score", *(("policy",) if args.during_dpo else ())):
        workers.append(start(worker_command(python, queue), policy_worker_env(env) if queue == "policy" else env, scratch / f"{queue}.log"))

    def serving() -> str | None:
        answer = tasks.reward_score.delay("Where is my parcel?", [], ["It ships today."]).get(timeout=300)
        return answer.get("reward_model_version")

    t = time.perf_counter()
    run = training_run_request(kind=TrainingRun.Kind.REWARD_FAST, trigger=TrainingRun.Trigger.CLI)
    while run.status not in ("succeeded", "failed"):
        time.sleep(0.5)
        run.refresh_from_db()
    if run.status == "failed":
        raise SystemExit(f"the cold fit failed: {run.error}")
    cold_seconds = time.perf_counter() - t
    current = serving()
    print(f"cold fit on {len(history)} labels: {cold_seconds:.1f} s wall (fit {run.metrics['seconds']} s), serving {current}", flush=True)

    rater, _, _ = user_create(username="bench-rater", role=Role.RATER)
    rounds = []
    for round_ in range(total_rounds):
        if args.during_dpo and round_ == args.baseline_rounds:
            dpo.append(dpo_start())
            dpo_wait_for_steps(dpo[0], timeout=1800)
        dpo_before = dpo_state(dpo[0]) if dpo else None
        if dpo_before is not None:
            print(f"round {round_ + 1} begins; DPO run {dpo[0]}: {dpo_before[1]}", flush=True)
        for _ in range(args.every):
            assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
            label_record(campaign=campaign_default(), rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice="left"))
        t0 = time.perf_counter()  # the last label has committed
        previous = current
        while (current := serving()) == previous:
            run = TrainingRun.objects.filter(trigger="auto").order_by("-id").first()
            if run is not None and run.status == "succeeded" and not run.metrics.get("promoted", True):
                raise SystemExit(f"the refit was not promoted: {run.metrics.get('gate')}")
            if run is not None and run.status == "failed":
                raise SystemExit(f"the refit failed: {run.error}")
            if time.perf_counter() - t0 > 600:
                raise SystemExit("no new version served within 600 s")
            time.sleep(0.2)
        latency = time.perf_counter() - t0
        run = TrainingRun.objects.filter(trigger="auto").order_by("-id").first()
        fit, share = run.metrics.get("seconds"), (run.metrics.get("seconds") or 0) / latency
        row = {"labels": args.labels + round_ * args.every, "seconds_label_to_serving": round(latency, 2),
               "fit_seconds": fit, "refit_share": round(share, 3), "val_accuracy": run.metrics.get("val_accuracy"),
               "n_train": run.metrics.get("n_train"), "version": current}
        note = ""
        if dpo_before is not None:
            dpo_after = dpo_state(dpo[0])
            row.update(during_dpo=dpo_before[0] and dpo_after[0], dpo_at_start=dpo_before[1], dpo_at_end=dpo_after[1])
            note = f"; DPO {dpo_before[1]} → {dpo_after[1]}" + ("" if row["during_dpo"] else " — NOT a round during a DPO run")
        print(f"round {round_ + 1}: label {row['labels']} → {current} serving after {latency:.1f} s "
              f"(fit {fit} s, {share:.0%} of it; val. accuracy {run.metrics.get('val_accuracy'):.3f}){note}", flush=True)
        rounds.append(row)
        if round_ + 1 < total_rounds:
            from feedback_app.services.imports import prompt_records_import as more

            extra = pairs[args.labels + round_ * args.every : args.labels + (round_ + 1) * args.every]
            more(records=[PromptRecord(line=i, prompt=p, context=x, responses=[c, r]) for i, (p, x, c, r) in enumerate(extra, 1)],
                 filename=f"bench-open-{round_}", sha256=f"bench-open-{round_}", source="bench")

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "labels": args.labels, "every": args.every,
        "cold_fit_seconds": round(cold_seconds, 2), "rounds": rounds,
        "goal_label_to_serving_seconds": 30, "load_average": os.getloadavg(),
    }
    if dpo:
        result["dpo"] = {"run": dpo[0], **dpo_env_now(), "rounds_during_dpo": sum(r.get("during_dpo", False) for r in rounds)}
        result["side_by_side"] = side_by_side(rounds)
        if result["side_by_side"]:
            print(f"side by side in this run: {result['side_by_side']}", flush=True)
    if not args.skip_generation:
        from bench import generation_throughput

        result["generation"] = generation_throughput.main(["--batch-sizes", "1,8,16", "--prompts", "16", "--max-new-tokens", "64", "--repeats", "2"])
    print(json.dumps({k: v for k, v in result.items() if k != "generation"}, indent=2))
    return result


def run_campaigns(args, env: dict, scratch: Path, workers: list) -> dict:
    """K campaigns, each labelled ``--every`` times a round: every campaign's time from its last label to its own new model serving."""
    from feedback_app import tasks
    from feedback_app.models import Role, TrainingRun
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.accounts import user_create
    from feedback_app.services.campaigns import campaign_create, member_set
    from feedback_app.services.import_parsing import PreferenceRecord, PromptRecord
    from feedback_app.services.imports import preference_records_import, prompt_records_import
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next
    from feedback_app.services.training_runs import training_run_request
    from rm_trainer.transcript import text_as_turns

    def as_prompt(text: str) -> tuple[str, list]:
        turns = text_as_turns(text) if text.startswith("\n\nHuman:") else []
        return (turns[-1]["content"], turns[:-1]) if turns and turns[-1]["role"] == "user" else (text, [])

    k = args.campaigns
    rater, _, _ = user_create(username="bench-rater", role=Role.RATER)
    campaigns = [campaign_default()] + [campaign_create(slug=f"bench-{i}", name=f"Bench campaign {i}") for i in range(2, k + 1)]
    for campaign in campaigns:  # a member of other campaigns is in the default one only by membership too
        member_set(campaign=campaign, user=rater, role=Role.RATER)
    per_history, per_fresh = args.labels // k - args.every, args.every * args.rounds
    pairs = [(*as_prompt(p), c, r) for p, c, r in real_pairs(k * (per_history + per_fresh), args.seed)]
    t = time.perf_counter()
    for i, campaign in enumerate(campaigns):
        mine = pairs[i * (per_history + per_fresh):(i + 1) * (per_history + per_fresh)]
        preference_records_import(records=[PreferenceRecord(line=n, prompt=p, context=x, chosen=c, rejected=r)
                                           for n, (p, x, c, r) in enumerate(mine[:per_history], 1)],
                                  filename=f"bench-{i}", sha256=f"bench-{i}", campaign_id=campaign.pk)
        prompt_records_import(records=[PromptRecord(line=n, prompt=p, context=x, responses=[c, r]) for n, (p, x, c, r) in enumerate(mine[per_history:], 1)],
                              filename=f"bench-open-{i}", sha256=f"bench-open-{i}", source="bench", campaign_id=campaign.pk)
    print(f"{k} campaigns: imported {per_history} labelled pairs and {per_fresh} open comparisons each in {time.perf_counter() - t:.1f} s", flush=True)
    python = sys.executable
    for queue in ("gpu", "score"):
        workers.append(start(worker_command(python, queue), env, scratch / f"{queue}.log"))

    def serving(campaign_id: int) -> str | None:
        return tasks.reward_score.delay("Where is my parcel?", [], ["It ships today."], campaign_id).get(timeout=300).get("reward_model_version")

    t = time.perf_counter()
    cold = [training_run_request(kind=TrainingRun.Kind.REWARD_FAST, trigger=TrainingRun.Trigger.CLI, campaign_id=c.pk) for c in campaigns]
    for run in cold:
        while run.status not in ("succeeded", "failed"):
            time.sleep(0.5)
            run.refresh_from_db()
        if run.status == "failed":
            raise SystemExit(f"the cold fit of campaign {run.campaign_id} failed: {run.error}")
    current = {c.pk: serving(c.pk) for c in campaigns}
    print(f"cold fits of {k} campaigns, one after the other on one worker: {time.perf_counter() - t:.1f} s; serving {current}", flush=True)

    rounds = []
    for round_ in range(args.rounds):
        started = {}
        for campaign in campaigns:  # each campaign's refit falls due as its last label commits
            for _ in range(args.every):
                held = assignment_lease_next(campaign=campaign, rater=rater)
                label_record(campaign=campaign, rater=rater, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left"))
            started[campaign.pk] = time.perf_counter()
        latency = {}
        while len(latency) < k:
            for campaign in campaigns:
                if campaign.pk not in latency and (now := serving(campaign.pk)) != current[campaign.pk]:
                    latency[campaign.pk], current[campaign.pk] = time.perf_counter() - started[campaign.pk], now
            if time.perf_counter() - min(started.values()) > 1800:
                raise SystemExit(f"not every campaign served a new model within 1800 s: {latency}")
            time.sleep(0.2)
        fits = {c.pk: TrainingRun.objects.filter(trigger="auto", campaign=c).order_by("-id").first().metrics.get("seconds") for c in campaigns}
        row = {"round": round_ + 1, "seconds_label_to_serving": {c.slug: round(latency[c.pk], 2) for c in campaigns},
               "fit_seconds": {c.slug: fits[c.pk] for c in campaigns}, "slowest": round(max(latency.values()), 2),
               "bound_k_plus_1_longest_fit": round((k + 1) * max(f or 0 for f in fits.values()), 2)}
        print(f"round {round_ + 1}: label → serving per campaign {row['seconds_label_to_serving']} (refits {row['fit_seconds']}); "
              f"slowest {row['slowest']} s, bound (K + 1) × longest refit = {row['bound_k_plus_1_longest_fit']} s", flush=True)
        rounds.append(row)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "campaigns": k, "labels": args.labels, "every": args.every,
              "rounds": rounds, "load_average": os.getloadavg()}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(main())
