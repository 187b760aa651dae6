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
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="loop-latency-"))
    sys.path.insert(0, str(ROOT))
    from feedback_app.devsupport import scratch_redis_start

    redis, redis_url = scratch_redis_start(scratch / "redis")
    (scratch / "secret_key").write_text("bench-only-secret-key-" + os.urandom(8).hex())
    env = {**os.environ, "VAR_DIR": str(scratch), "MODEL_STORE": str(scratch / "models"), "REDIS_URL": redis_url,
           "REFIT_EVERY_N_LABELS": str(args.every), "CELERY_TASK_ALWAYS_EAGER": "0", "SUPPLY_OPEN_TARGET": "0", "LOG_LEVEL": "WARNING",
           "DJANGO_SETTINGS_MODULE": "feedback_app.settings"}
    env.pop("DATABASE_URL", None)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    workers = []
    try:
        result = run(args, env, scratch, workers)
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
        redis.terminate()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def run(args, env: dict, scratch: Path, workers: list) -> dict:
    from feedback_app import tasks
    from feedback_app.models import Role, TrainingRun
    from feedback_app.services.accounts import user_create
    from feedback_app.services.import_parsing import PreferenceRecord, PromptRecord
    from rm_trainer.transcript import text_as_turns
    from feedback_app.services.imports import preference_records_import, prompt_records_import
    from feedback_app.services.labeling import LabelSubmission, assignment_lease_next, label_record
    from feedback_app.services.training_runs import training_run_request

    def as_prompt(text: str) -> tuple[str, list]:
        turns = text_as_turns(text) if text.startswith("\n\nHuman:") else []
        return (turns[-1]["content"], turns[:-1]) if turns and turns[-1]["role"] == "user" else (text, [])

    pairs = [(*as_prompt(p), c, r) for p, c, r in real_pairs(args.labels + args.every * args.rounds, args.seed)]
    history, fresh = pairs[: args.labels - args.every], pairs[args.labels - args.every : args.labels]
    t = time.perf_counter()
    preference_records_import(records=[PreferenceRecord(line=i, prompt=p, context=x, chosen=c, rejected=r)
                                       for i, (p, x, c, r) in enumerate(history, 1)], filename="bench", sha256="bench")
    prompt_records_import(records=[PromptRecord(line=i, prompt=p, context=x, responses=[c, r]) for i, (p, x, c, r) in enumerate(fresh, 1)],
                          filename="bench-open", sha256="bench-open", source="bench")
    print(f"imported {len(history)} labelled pairs and {len(fresh)} open comparisons in {time.perf_counter() - t:.1f} s", flush=True)

    python = sys.executable
    for queue in ("gpu", "score"):
        workers.append(start([python, "-m", "celery", "-A", "feedback_app", "worker", "-Q", queue, "-n", f"{queue}@bench", "--pool", "solo",
                              "--loglevel", "WARNING"], env, scratch / f"{queue}.log"))

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
    for round_ in range(args.rounds):
        for _ in range(args.every):
            assignment = assignment_lease_next(rater=rater)
            label_record(rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice="left"))
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
        print(f"round {round_ + 1}: label {args.labels + round_ * args.every} → {current} serving after {latency:.1f} s "
              f"(fit {run.metrics.get('seconds')} s, val. accuracy {run.metrics.get('val_accuracy'):.3f})", flush=True)
        rounds.append({"labels": args.labels + round_ * args.every, "seconds_label_to_serving": round(latency, 2),
                       "fit_seconds": run.metrics.get("seconds"), "val_accuracy": run.metrics.get("val_accuracy"),
                       "n_train": run.metrics.get("n_train"), "version": current})
        if round_ + 1 < args.rounds:
            from feedback_app.services.imports import prompt_records_import as more

            extra = pairs[args.labels + round_ * args.every : args.labels + (round_ + 1) * args.every]
            more(records=[PromptRecord(line=i, prompt=p, context=x, responses=[c, r]) for i, (p, x, c, r) in enumerate(extra, 1)],
                 filename=f"bench-open-{round_}", sha256=f"bench-open-{round_}", source="bench")

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "labels": args.labels, "every": args.every,
        "cold_fit_seconds": round(cold_seconds, 2), "rounds": rounds,
        "goal_label_to_serving_seconds": 30,
    }
    if not args.skip_generation:
        from bench import generation_throughput

        result["generation"] = generation_throughput.main(["--batch-sizes", "1,8,16", "--prompts", "16", "--max-new-tokens", "64", "--repeats", "2"])
    print(json.dumps({k: v for k, v in result.items() if k != "generation"}, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(main())
