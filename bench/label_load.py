"""Load test of the labeling API: N simulated raters loop next → label for T seconds.

Usage (the server must use the same DATABASE_URL as this script, which sets up raters and
comparisons in that database and audits it afterwards):

    .venv/bin/python bench/label_load.py --url http://127.0.0.1:8000 --raters 50 --seconds 30
    .venv/bin/python bench/label_load.py --serve uvicorn --web-workers 2   # starts a server itself
    .venv/bin/python bench/label_load.py --serve uvicorn --combined        # one call per label (label?next=1)
    .venv/bin/python bench/label_load.py --serve uvicorn --combined --workers   # with the Celery workers and beat, as in production
    .venv/bin/python bench/label_load.py --serve uvicorn --combined --generator wrk             # raters driven by Debian's wrk
    .venv/bin/python bench/label_load.py --serve uvicorn --combined --generator wrk --think-ms 150   # a paced load
    .venv/bin/python bench/label_load.py --serve granian --combined --generator wrk   # the WSGI entry point on Granian
    .venv/bin/python bench/label_load.py --serve granian --combined --generator wrk --warmup-seconds 20   # a studio past its first minute

The raters are asyncio tasks in this process (``--generator httpx``, the default) or the threads of
Debian's compiled ``wrk`` (``--generator wrk``, ``bench/label_load.lua``), which takes a fraction
of the CPU and so leaves the cores to the server. ``--think-ms`` makes each rater pause after each
answer, for the latency at a given rate rather than at saturation.

Prints labels/s, p50/p95/p99 latency of each call (with wrk: of every call together), errors, and an audit: labels stored equal
labels acknowledged, no comparison collected more labels than it asked for, no rater labelled
a comparison twice. Exits non-zero when the audit fails. With ``--serve`` it also prints the
server's CPU time per label (``server_cpu_ms_per_label``: every process of the server's,
Redis's, the workers' and, for a PostgreSQL server on this machine, the database's sessions, from
/proc, over the timed window) and the load generator's own share of the
machine's CPU (``client_cpu_share``), so a figure on a shared machine says what it cost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.label_profile import statistics_refresh  # noqa: E402
from bench.load_generators import ServerCpu, database_server, run_load, run_wrk  # noqa: E402  (after the path)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_app.settings")


def setup_django():
    import logging

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the figures


PREPARE_CHUNK = 2000  # comparisons a transaction while a run prepares


def prepare(*, raters: int, comparisons: int, required_labels: int, tag: str) -> dict[str, str]:
    """Create this run's raters (with API tokens) and fresh open comparisons, from one import batch as an import of
    prompts with replies makes them (a studio's comparisons come from an import or from the policy: each names where it came
    from); return {username: token}.

    The raters are new in every run, so the audit can count exactly their labels, whichever open
    comparisons (this run's, or ones an earlier run left open) the server gave them.
    """
    from django.db import transaction

    from bench.scratch import rater_create
    from feedback_app.models import Comparison, ImportBatch, Prompt, Response

    tokens = {}
    for i in range(raters):
        name = f"bench-{tag}-{i:03d}"
        _, _, tokens[name] = rater_create(name)
    batch = ImportBatch.objects.create(kind=ImportBatch.Kind.PROMPTS, filename=f"bench-{tag}.jsonl", sha256=hashlib.sha256(tag.encode()).hexdigest())
    # In transactions of PREPARE_CHUNK comparisons, as the studio's own imports write: one transaction of them all held
    # SQLite's write lock so long (tens of seconds) that a studio this ran against (--url) failed its workers' writes meanwhile.
    for start in range(0, comparisons, PREPARE_CHUNK):
        with transaction.atomic():
            prompts = Prompt.objects.bulk_create(
                [Prompt(text=f"[{tag}] Customer request {i}: my parcel has not arrived, what now?", source=f"bench:{tag}", import_batch=batch)
                 for i in range(start, min(comparisons, start + PREPARE_CHUNK))]
            )
            responses = Response.objects.bulk_create([Response(prompt=p, text=f"Reply {side} to request {p.pk}.") for p in prompts for side in ("A", "B")])
            Comparison.objects.bulk_create(
                [Comparison(prompt=p, response_a=responses[2 * i], response_b=responses[2 * i + 1], required_labels=required_labels,
                            import_batch=batch) for i, p in enumerate(prompts)]
            )
    return tokens


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0..100) by linear interpolation between closest ranks; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def audit(*, tokens: dict[str, str], acknowledged: list[tuple[str, int]], in_flight: list[tuple[str, int]] = ()) -> dict:
    """Compare the labels stored for this run's raters with those the server acknowledged. A label still in flight when the run
    stopped (wrk cuts its connections at the end) may be stored or not: stored, it counts as acknowledged."""
    from django.db.models import Count, F
    from django.utils import timezone

    from feedback_app.models import Assignment, Comparison, PreferenceLabel

    # tokens are stored only hashed: count by the raters' names
    name_of = {token: name for name, token in tokens.items()}
    stored = PreferenceLabel.objects.filter(rater__username__in=list(tokens))
    stored_pairs = Counter(stored.values_list("rater__username", "comparison_id"))
    acked_pairs = Counter((name_of[token], comparison_id) for token, comparison_id in acknowledged)
    for token, comparison_id in in_flight:
        if stored_pairs[(name_of[token], comparison_id)] and not acked_pairs[(name_of[token], comparison_id)]:
            acked_pairs[(name_of[token], comparison_id)] += 1
    comparisons = Comparison.objects.filter(pk__in=stored.values("comparison_id"))
    over = comparisons.filter(label_count__gt=F("required_labels")).count()
    mismatched = comparisons.annotate(n=Count("labels")).exclude(n=F("label_count")).count()
    # The slot count each comparison's row keeps for the pick equals its leases, wherever none of the leases counted has expired.
    now = timezone.now()
    held = Assignment.objects.filter(rater__username__in=list(tokens)).values("comparison_id")
    leases = Counter(Assignment.objects.filter(comparison_id__in=held, status=Assignment.Status.LEASED, lease_expires_at__gt=now)
                     .values_list("comparison_id", flat=True))
    rows = Comparison.objects.filter(pk__in=held, leases_recount_at__gt=now).values_list("pk", "leases_held")
    slots_mismatched = sum(1 for pk, counted in rows if counted != leases[pk])
    return {
        "labels_acknowledged": sum(acked_pairs.values()),
        "labels_stored": sum(stored_pairs.values()),
        "acknowledged_but_missing": sum((acked_pairs - stored_pairs).values()),
        "stored_but_not_acknowledged": sum((stored_pairs - acked_pairs).values()),
        "duplicate_rater_comparison": sum(1 for n in stored_pairs.values() if n > 1) + sum(1 for n in acked_pairs.values() if n > 1),
        "over_collected_comparisons": over,
        "label_count_mismatches": mismatched,
        "slot_count_mismatches": slots_mismatched,
    }


def leases_end_settled(*, tokens: dict[str, str], settle: float = 0.5, passes: int = 20) -> int:
    """``leases_end`` in passes ``settle`` s apart until one ends none (at most ``passes``); return how many ended. A label sent
    as the load stopped takes its next lease after a first pass (4 to 19 held the head through session 43's timed runs)."""
    total = 0
    for _ in range(passes):
        time.sleep(settle)
        total += (ended := leases_end(tokens=tokens))
        if not ended:
            break
    return total


def leases_end(*, tokens: dict[str, str]) -> int:
    """End the leases this run's raters still hold (the campaign's lease time, 10 minutes by default); return how many.

    The raters are gone, as raters who close the page are, but a later run on the same database would otherwise walk
    past their comparisons, held and never labelled, at the head of the queue on every pick: back-to-back runs measured
    a longer walk each time. Their slots go back to the pool as an expired lease's do.
    """
    from django.utils import timezone

    from feedback_app.models import Assignment
    from feedback_app.services.leasing import comparison_slots_recount

    now = timezone.now()
    held = Assignment.objects.filter(rater__username__in=list(tokens), status=Assignment.Status.LEASED, lease_expires_at__gt=now)
    comparison_ids = list(held.values_list("comparison_id", flat=True))
    ended = held.update(lease_expires_at=now)
    comparison_slots_recount(comparison_ids=comparison_ids, now=now)  # the raters have stopped: no lease is under way
    return ended


def start_server(kind: str, workers: int, port: int, redis_url: str | None) -> subprocess.Popen:
    from feedback_app.devsupport import asgi_server_command, static_root_make, wait_for_port, wsgi_server_command

    env = {**os.environ, "PYTHONUNBUFFERED": "1"} | ({"REDIS_URL": redis_url} if redis_url else {})
    if kind == "daphne":
        cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "feedback_app.asgi:application"]
    elif kind == "granian":
        cmd = wsgi_server_command(host="127.0.0.1", port=port, workers=workers)
    else:
        cmd = asgi_server_command(host="127.0.0.1", port=port, workers=workers)
    static_root_make()
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    wait_for_port("127.0.0.1", port, timeout=60, process=process)
    return process


def stop(children: list[subprocess.Popen], grace: float = 20) -> None:
    """Stop the children, newest first; one still running after ``grace`` seconds (a worker finishing a training step) is killed
    with its whole session, so nothing the bench started outlives it."""
    deadline = time.monotonic() + grace
    for child in reversed(children):  # one after another: the web processes' last pushes still find Redis
        child.terminate()
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(child.pid, signal.SIGKILL)  # its session's other processes too (a worker's pool child)
        except ProcessLookupError:
            pass
        child.wait()


def start_workers(redis_url: str, scratch: Path) -> dict[str, subprocess.Popen]:
    """Start the studio's Celery workers and beat as ``manage.py serve`` does (each in its own session, so its CPU is counted):
    the dashboard pushes, automatic refits (``REFIT_EVERY_N_LABELS``) and policy updates run during the load. Return them by
    name, so each one's CPU is reported: serving (pushes, scoring, beat) apart from learning (refits, the niced policy updates)."""
    from feedback_app.management.commands.serve import policy_worker_env

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "REDIS_URL": redis_url, "DB_POOL": "0"}
    celery = [sys.executable, "-m", "celery", "-A", "feedback_app"]
    specs = {"workers: pushes and scoring": (["worker", "-Q", "default,score", "--concurrency", "1"], env),
             "workers: refits": (["worker", "-Q", "gpu", "--concurrency", "1"], env),
             "workers: policy updates (niced)": (["worker", "-Q", "policy", "--concurrency", "1"], policy_worker_env(env)),  # as serve starts it
             "beat": (["beat", "--schedule", str(scratch / "celerybeat-schedule")], env)}
    log = (scratch / "workers.log").open("ab")
    return {name: subprocess.Popen(celery + spec + ["--loglevel", "WARNING"]
                                   + (["-n", f"load-{spec[2].split(',')[0]}@%h.{os.getpid()}", "--without-gossip", "--without-mingle"]
                                      if spec[0] == "worker" else []),
                                   cwd=ROOT, env=spec_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            for name, (spec, spec_env) in specs.items()}


def workers_log_errors(path: Path) -> dict:
    """Count the lines of the workers' log that report an error or a traceback (a refit that failed under load would hide in the
    CPU figures otherwise); return the count and the first such line."""
    if not path.exists():
        return {"count": 0, "first": None}
    bad = [line for line in path.read_text(errors="replace").splitlines() if " ERROR " in line or line.startswith("Traceback")]
    return {"count": len(bad), "first": bad[0][:300] if bad else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--comparisons", type=int, default=0, help="Fresh comparisons to create (default: enough for 1,000 labels/s).")
    parser.add_argument("--required-labels", type=int, default=1)
    parser.add_argument("--serve", choices=["daphne", "uvicorn", "granian"], help="Start this server for the run (else use --url): "
                        "daphne or uvicorn serve feedback_app.asgi, granian feedback_app.wsgi.")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8077)
    parser.add_argument("--combined", action="store_true", help="One call per label: label?next=1 carries the next lease.")
    parser.add_argument("--workers", action="store_true", help="Also start the Celery workers and beat (pushes, automatic refits), as in production.")
    parser.add_argument("--generator", choices=["httpx", "wrk"], default="httpx",
                        help="httpx: raters as asyncio tasks in this process; wrk: Debian's compiled wrk (bench/label_load.lua), which leaves the cores to the server.")
    parser.add_argument("--think-ms", type=float, default=0, help="A rater's pause after each answer (0: every rater at full speed).")
    parser.add_argument("--think-spread", action="store_true", help="Draw each pause from half to one and a half times --think-ms, and "
                        "start the raters spread over one: many raters who pause alike arrive in waves.")
    parser.add_argument("--warmup-seconds", type=float, default=0,
                        help="First run the load this long with raters of its own, unmeasured, then ANALYZE: the timed run meets a studio "
                             "with a history and its statistics, as after a first minute (a fresh database's statements are planned "
                             "for empty label and lease tables until autovacuum's first ANALYZE).")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    args = parser.parse_args()

    setup_django()
    from django.core.management import call_command
    from django.db import connection, connections
    from django.utils import timezone

    from bench._workers import workers_wait_ready, workers_work_done

    call_command("migrate", verbosity=0)  # a fresh database (a new DATABASE_URL) gets its tables; a migrated one is left as it is

    tag = secrets.token_hex(4)
    comparisons = args.comparisons or int(1000 * (args.seconds + args.warmup_seconds) / args.required_labels) + 1000
    tokens = prepare(raters=args.raters, comparisons=comparisons, required_labels=args.required_labels, tag=tag)
    warm_tokens = prepare(raters=args.raters, comparisons=0, required_labels=args.required_labels, tag=f"{tag}w") if args.warmup_seconds else {}
    statistics_refresh()
    database = database_server()
    connections.close_all()
    children, groups = [], {}
    url = args.url
    scratch = Path(tempfile.mkdtemp(prefix="label-load-"))
    try:
        if args.serve:
            # The server pushes to dashboards and queues Celery tasks on Redis, as in production:
            # without REDIS_URL, start the embedded one as `make run` does.
            redis_url = os.environ.get("REDIS_URL")
            if not redis_url:
                from feedback_app.devsupport import scratch_redis_start

                redis, redis_url = scratch_redis_start(scratch)
                children.append(redis)
                groups["redis"] = ([redis.pid], [])
            if args.workers:
                workers_started = timezone.now()
                for name, worker in start_workers(redis_url, scratch).items():
                    children.append(worker)
                    groups[name] = ([worker.pid], [])
            children.append(start_server(args.serve, args.web_workers, args.port, redis_url))
            groups["web"] = ([children[-1].pid], [])
            if args.workers:  # up before the raters, as in a studio
                print(f"workers ready in {workers_wait_ready(redis_url, ['default', 'score', 'gpu', 'policy']):.1f} s", flush=True)
            if database:
                groups["database"] = ([], [database])
            url = f"http://127.0.0.1:{args.port}"
        def drive(**load) -> dict:
            load = dict(url=url, combined=args.combined, think_ms=args.think_ms, spread=args.think_spread, **load)
            return run_wrk(**load, scratch=scratch) if args.generator == "wrk" else asyncio.run(run_load(**load))

        if warm_tokens:  # a history first, then the statistics autovacuum would take of it
            drive(tokens=warm_tokens, seconds=args.warmup_seconds, cpu=None)
            leases_end_settled(tokens=warm_tokens)
            statistics_refresh()
            connections.close_all()
        stats = drive(tokens=tokens, seconds=args.seconds, cpu=ServerCpu(groups) if args.serve else None)
    finally:
        stop(children)
        worker_errors = workers_log_errors(scratch / "workers.log")
        if worker_errors["count"]:  # kept for reading: a traceback there is a bug
            worker_errors["log"] = str(shutil.copy(scratch / "workers.log", Path(tempfile.gettempdir()) / f"{scratch.name}-workers.log"))
        shutil.rmtree(scratch, ignore_errors=True)
    checks = audit(tokens=tokens, acknowledged=stats["acknowledged"], in_flight=stats.get("in_flight_at_stop", []))
    ended = leases_end(tokens=tokens)
    n = checks["labels_acknowledged"]
    by_group = stats["server_cpu_by_group"]
    result = {
        "database": connection.vendor,
        "server": args.serve or url,
        "web_workers": args.web_workers if args.serve in ("uvicorn", "granian") else 1,
        "celery_workers": bool(args.workers and args.serve),
        "database_cpu_counted": bool(database and args.serve),
        "raters": args.raters,
        "seconds": round(stats["elapsed"], 1),
        "labels_per_second": round(n / stats["elapsed"], 1),
        "calls_per_label": "1 (label?next=1)" if args.combined else "2 (next, label)",
        "server_cpu_ms_per_label": round(1000 * sum(by_group.values()) / n, 2) if by_group is not None and n else None,
        "server_cpu_ms_per_label_by_process": {name: round(1000 * seconds / n, 2) for name, seconds in by_group.items()} if by_group and n else None,
        # counted, not timed: a thread that waits switches voluntarily, one taken off its core involuntarily (live processes only)
        "server_context_switches_per_label_by_process": {
            name: {"voluntary": round(voluntary / n, 1), "involuntary": round(involuntary / n, 1)}
            for name, (voluntary, involuntary) in stats["server_switches_by_group"].items()} if stats.get("server_switches_by_group") and n else None,
        # the share of the machine's CPU its host gave another guest in the window (a virtual machine's slow spells)
        "machine_steal_share": stats.get("machine_steal_share"),
        "client_cpu_share": round(stats["client_cpu_seconds"] / (stats["elapsed"] * (os.cpu_count() or 1)), 3),
        "client_cpu_ms_per_label": round(1000 * stats["client_cpu_seconds"] / n, 2) if n else None,
        "generator": args.generator,
        "think_ms": args.think_ms,
        "think_spread": args.think_spread,
        "warmup_seconds": args.warmup_seconds,
        "latency_ms": {
            call: {f"p{q}": round(1000 * percentile(v, q), 1) for q in (50, 95, 99)} | {"n": len(v)}
            for call, v in sorted(stats["latency"].items())
        } if args.generator == "httpx" else {"all calls": stats["latency_ms_by_wrk"]},
        "errors": dict(stats["errors"]),
        "repeated_label_answers": stats["repeats"],
        "labels_in_flight_at_stop": len(stats.get("in_flight_at_stop", [])),
        "empty_queue_answers": stats["empty"],
        "leases_ended_after": ended,
        "audit": checks,
        "workers_log_errors": worker_errors,
        "workers_done": workers_work_done(workers_started) if args.workers and args.serve else None,
    }
    ok = (checks["acknowledged_but_missing"] == checks["stored_but_not_acknowledged"] == checks["duplicate_rater_comparison"]
          == checks["over_collected_comparisons"] == checks["label_count_mismatches"] == checks["slot_count_mismatches"] == 0)
    result["audit_ok"] = ok
    print(f"database {result['database']}, server {result['server']} x{result['web_workers']}, {args.raters} raters"
          f"{f' pausing {args.think_ms:g} ms after each answer' if args.think_ms else ''} ({args.generator}), {result['seconds']} s"
          f"{f' after {args.warmup_seconds:g} s of warm-up and an ANALYZE' if args.warmup_seconds else ''}; "
          f"workers and beat {'running' if result['celery_workers'] else 'not started'}; the database's CPU "
          f"{'counted' if result['database_cpu_counted'] else 'not counted'} in the server's")
    print(f"labels/s: {result['labels_per_second']}   labels: {n}   errors: {sum(stats['errors'].values())} {dict(stats['errors']) or ''}")
    print(f"calls per label: {result['calls_per_label']}   server CPU per label: {result['server_cpu_ms_per_label']} ms   "
          f"load generator: {result['client_cpu_ms_per_label']} ms CPU per label, {result['client_cpu_share']:.1%} of the machine's CPU")
    if result["server_cpu_ms_per_label_by_process"]:
        print("  server CPU per label by process:", ", ".join(f"{name} {ms} ms" for name, ms in result["server_cpu_ms_per_label_by_process"].items()))
    if result["server_context_switches_per_label_by_process"]:
        print("  context switches per label (voluntary/involuntary):", ", ".join(
            f"{name} {c['voluntary']}/{c['involuntary']}" for name, c in result["server_context_switches_per_label_by_process"].items()))
    if result["machine_steal_share"] is not None:
        print(f"  the machine's CPU taken by its host in the window: {result['machine_steal_share']:.1%}")
    for call, figures in result["latency_ms"].items():
        print(f"  {call:<9} p50 {figures['p50']:>7} ms   p95 {figures['p95']:>7} ms   p99 {figures['p99']:>7} ms   (n={figures['n']})")
    print("audit:", "OK" if ok else "FAILED", json.dumps(checks))
    if args.workers and args.serve:
        print(f"workers' log: {worker_errors['count']} error lines" + (f" (kept: {worker_errors['log']}); the first: {worker_errors['first']}"
                                                                       if worker_errors["count"] else ""))
        print("workers finished:", ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in result["workers_done"].items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
