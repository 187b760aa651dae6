"""What one next + label costs the server, statement by statement: the profile behind `label_load`'s figures.

In one process, without HTTP or a load generator: Django's test client calls the API as a rater
does (``Authorization: Token``), on a scratch SQLite database (or ``DATABASE_URL``) given a labelled
history first (``--history``). After ``--warmup`` rounds and an ANALYZE, it times ``--rounds`` rounds of ``GET /comparisons/next/`` →
``POST /comparisons/{id}/label/`` (or, with ``--combined``, ``label?next=1`` alone) and prints:
the CPU time per round (this process's own accounting, so a busy machine does not inflate it),
every SQL statement of one round with its time, the objects a label leaves in reference cycles (what only the
garbage collector frees), and the functions that took the time (cProfile, cumulative or, with ``--sort tottime``, by their
own time).

    .venv/bin/python -m bench.label_profile --rounds 300
    .venv/bin/python -m bench.label_profile --rounds 300 --combined
    .venv/bin/python -m bench.label_profile --rounds 300 --combined --wsgi   # as a web process calls Django

A label call throttled by the label rate would fail the round: the rate is lifted for the run (``THROTTLE_LABEL_RATE``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def setup(database_url: str | None):
    """Point Django at a scratch folder (SQLite there unless ``database_url``) and a scratch Redis, as under
    ``make run`` (a label pushes to the dashboards through it); migrate. On leaving, stop the Redis and remove the folder."""
    scratch = Path(tempfile.mkdtemp(prefix="label-profile-"))
    sys.path.insert(0, str(ROOT))
    from feedback_app.devsupport import scratch_redis_start

    redis, redis_url = scratch_redis_start(scratch)
    try:
        os.environ.update({"REDIS_URL": redis_url, "VAR_DIR": str(scratch), "SECRET_KEY": "label-profile-scratch",
                           "DJANGO_SETTINGS_MODULE": "feedback_app.settings", "LOG_LEVEL": "WARNING", "REFIT_EVERY_N_LABELS": "0",
                           "POLICY_EVERY_N_LABELS": "0", "THROTTLE_LABEL_RATE": "1000000/minute"})
        if database_url:
            os.environ["DATABASE_URL"] = database_url
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield
    finally:
        if "feedback_app.selectors.token_cache" in sys.modules:
            from feedback_app.selectors.token_cache import stop_here

            stop_here()  # its listener would warn that Redis went away
        redis.terminate()
        redis.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)


def fill(comparisons: int, rater: str = "") -> str:
    """Create a rater (named ``rater``, or a fresh ``profile-rater-...``: a database profiled before keeps its rater) and
    ``comparisons`` open comparisons, from one import batch as an import makes them; return the rater's API token. No gold
    pairs (their draw is random)."""
    from feedback_app.models import Campaign, Comparison, ImportBatch, Prompt, Response, Role
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.accounts import user_create

    Campaign.objects.filter(pk=campaign_default().pk).update(gold_rate=0.0)
    batch = ImportBatch.objects.create(kind=ImportBatch.Kind.PROMPTS, filename="profile.jsonl", sha256=uuid.uuid4().hex * 2)
    prompts = Prompt.objects.bulk_create([Prompt(text=f"Profile request {i}: where is my parcel?", source="bench:profile", import_batch=batch)
                                          for i in range(comparisons)])
    replies = Response.objects.bulk_create([Response(prompt=p, text=f"Reply {k} to {p.pk}.") for p in prompts for k in (0, 1)])
    Comparison.objects.bulk_create([Comparison(prompt=p, response_a=replies[2 * i], response_b=replies[2 * i + 1], import_batch=batch)
                                    for i, p in enumerate(prompts)])
    return user_create(username=rater or f"profile-rater-{uuid.uuid4().hex[:8]}", role=Role.RATER)[2]


def history_add(labels: int) -> None:
    """Give the scratch studio a labelled history of about ``labels`` labels (``label_growth``'s fill: complete comparisons,
    five labels each from 50 raters of their own, a submitted lease behind each), as a studio that has run for a while
    holds; a profiled rater's picks never meet them. A database that holds the fill's raters (profiled before) keeps its history."""
    from django.contrib.auth import get_user_model

    from bench.label_growth import RATER_NAME, Fill

    if labels <= 0 or get_user_model().objects.filter(username=RATER_NAME.format(0)).exists():
        return
    Fill(raters=50, labels_per_day=100_000, open_share=0.0, max_open=0, seed=0, live_seconds=0).grow_to(labels)


def rater_ready(rater: "Rater", *, warmup: int) -> None:
    """The rater's ``warmup`` rounds, then ANALYZE: the timed rounds run on statistics that know the tables as they are.
    Taken before the warm-up, on nearly empty label and lease tables, they made PostgreSQL plan sequential scans of the
    leases (even for a foreign key's check by primary key), whose cost then grew with every label of the run (taken at 200
    labels: 1.2 ms of the database's CPU a label over the next 500 labels, 4.3 over the eighth 500; bench/README.md, session 49)."""
    for _ in range(warmup):
        rater.round()
    statistics_refresh()


def statistics_refresh() -> None:
    """On PostgreSQL, ANALYZE the database, as autovacuum would for a studio: thousands of new rows without statistics
    mislead the planner (the pick read every open comparison, sorted, instead of walking the queue's index from its head)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


class Rater:
    """A rater's rounds through the test client, or with ``wsgi`` through Django's WSGI handler as a web process calls it
    (without the test client's own work); ``combined`` takes each next lease from the label's answer."""

    def __init__(self, token: str, combined: bool, wsgi: bool = False) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import Client

        self.token, self.handler = token, WSGIHandler() if wsgi else None
        self.client = Client(HTTP_AUTHORIZATION=f"Token {token}")
        self.combined, self.following = combined, None

    def round(self) -> None:
        if self.following is None:
            status, body = self.call("GET", "/api/v1/comparisons/next/")
            assert status == 200, status
            self.following = json.loads(body)
        status, body = self.call("POST", f"/api/v1/comparisons/{self.following['id']}/label/", "next=1" if self.combined else "",
                                 b'{"choice": "left", "strength": 2}')
        assert status == 201, body
        self.following = json.loads(body).get("next") if self.combined else None

    def call(self, method: str, path: str, query: str = "", body: bytes = b"") -> tuple[int, bytes]:
        if self.handler is None:
            url = f"{path}?{query}" if query else path
            answer = (self.client.get(url) if method == "GET" else
                      self.client.post(url, body, content_type="application/json"))
            return answer.status_code, answer.content
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000",
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
                   "HTTP_AUTHORIZATION": f"Token {self.token}", "CONTENT_LENGTH": str(len(body))}
        if body:
            environ["CONTENT_TYPE"] = "application/json"
        started = {}
        content = b"".join(self.handler(environ, lambda status, headers: started.setdefault("status", status)))
        return int(started["status"].split()[0]), content


def statements_of_one_round(rater: Rater) -> list[dict]:
    """Return each SQL statement one round ran, with its time."""
    return statements_of(rater.round)


def statements(call) -> tuple[int, float]:
    """Run ``call``; return how many SQL statements it made and their total wall time in ms."""
    seen = statements_of(call)
    return len(seen), round(sum(s["ms"] for s in seen), 2)


def timed(call, repeat: int) -> dict:
    """Median wall and CPU ms of ``repeat`` calls after one warm-up, and the statements of the warm-up call."""
    n, sql_ms = statements(call)
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        call()
        walls.append(1000 * (time.perf_counter() - w))
        cpus.append(1000 * (time.process_time() - c))
    return {"wall_ms": round(statistics.median(walls), 2), "cpu_ms": round(statistics.median(cpus), 2), "statements": n, "sql_ms": sql_ms}


def statements_of(call) -> list[dict]:
    """Run ``call``; return each SQL statement it ran, with its time."""
    from django.db import connection

    seen = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seen.append({"ms": round(1000 * (time.perf_counter() - started), 3), "sql": " ".join(sql.split())})

    with connection.execute_wrapper(timed):
        call()
    return seen


def database_side(rounds: int, run) -> dict:
    """On PostgreSQL, what ``run`` (``rounds`` labels) cost the database, from its own accounting: the CPU of the server's
    processes, its backends and its background ones, as ``label_load`` counts them (from ``/proc``, so None where the database
    runs on another machine; the pool hands out its connections in turn, so one backend's CPU, read before and after, could
    be two backends' and meant nothing), the WAL it wrote,
    and the share of the comparison's and the assignment's row updates that were HOT (no index entry written; the counts
    are flushed first on PostgreSQL 15 and later, and may lag a second before). Empty elsewhere."""
    from django.db import connection

    from bench.load_generators import database_server, session_cpu_seconds

    if connection.vendor != "postgresql":
        run()
        return {}
    tables = ("feedback_app_comparison", "feedback_app_assignment")

    server = database_server()

    def read() -> tuple[float | None, int, dict]:
        with connection.cursor() as c:
            c.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
            wal = c.fetchone()[0]
            if connection.pg_version >= 150000:
                c.execute("SELECT pg_stat_force_next_flush()")
        with connection.cursor() as c:  # a later statement: the flush happens at the end of the one that asked for it
            c.execute("SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = ANY(%s)", [list(tables)])
            updates = {name: (upd, hot) for name, upd, hot in c.fetchall()}
        return None if server is None else session_cpu_seconds([], [server]), int(wal), updates

    cpu0, wal0, upd0 = read()
    run()
    cpu1, wal1, upd1 = read()
    cpu = None if cpu0 is None or cpu1 is None else round(1000 * (cpu1 - cpu0) / rounds, 3)
    result = {"db_cpu_ms_per_label": cpu, "wal_bytes_per_label": round((wal1 - wal0) / rounds)}
    for name in tables:
        updates, hot = upd1[name][0] - upd0[name][0], upd1[name][1] - upd0[name][1]
        result[f"{name.removeprefix('feedback_app_')}_updates_per_label"] = round(updates / rounds, 2)
        result[f"{name.removeprefix('feedback_app_')}_hot_share"] = round(hot / updates, 3) if updates else None
    return result


def unreachable_after(run) -> list:
    """Run ``run`` with the collector off; return the objects it left in reference cycles: what only the garbage collector
    frees, holding the interpreter's lock while it walks them (a web process's pauses under load)."""
    gc.collect()
    flags = gc.get_debug()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage, to be looked at
    try:
        run()
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
        gc.enable()


def left_for_the_collector(rounds: int, run) -> float:
    """The objects ``run`` (``rounds`` labels) left in reference cycles, a label (``unreachable_after``). Counted, not timed."""
    return round(len(unreachable_after(run)) / rounds, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--history", type=int, default=10_000, help="labels of a history added first (label_growth's fill; 0: none)")
    p.add_argument("--combined", action="store_true", help="label?next=1 alone per round")
    p.add_argument("--wsgi", action="store_true", help="call Django's WSGI handler as a web process does, not the test client")
    p.add_argument("--top", type=int, default=25, help="functions listed from the profile")
    p.add_argument("--sort", choices=["cumulative", "tottime"], default="cumulative", help="order of the profile's functions")
    p.add_argument("--json", type=Path)
    p.add_argument("--dump", type=Path, help="also write the profile there (pstats format: callers, callees)")
    args = p.parse_args(argv)
    with setup(os.environ.get("DATABASE_URL")):
        return profile_rounds(args)


def profile_rounds(args: argparse.Namespace) -> int:
    from django.db import connection

    rater = Rater(fill(args.warmup + 2 * args.rounds + 10), args.combined, args.wsgi)
    history_add(args.history)
    rater_ready(rater, warmup=args.warmup)
    statements = statements_of_one_round(rater)
    profile = cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    profile.enable()
    for _ in range(args.rounds):
        rater.round()
    profile.disable()
    if args.dump:
        profile.dump_stats(args.dump)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    # the profile's own overhead inflates the times it measures; the CPU per round is measured again without it
    cpu1, plain = time.process_time(), max(1, args.rounds // 3)

    def plain_rounds() -> None:
        for _ in range(plain):
            rater.round()
    database = database_side(plain, plain_rounds)
    plain_cpu = (time.process_time() - cpu1) / plain
    cyclic = left_for_the_collector(plain, plain_rounds)
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats(args.sort).print_stats(args.top)
    result = {"database": connection.vendor, "combined": args.combined, "through": "WSGI handler" if args.wsgi else "test client",
              "calls_per_label": 1 if args.combined else 2, "rounds": args.rounds,
              "cpu_ms_per_label": round(1000 * plain_cpu, 2), "cpu_ms_per_label_profiled": round(1000 * cpu / args.rounds, 2),
              "wall_ms_per_label_profiled": round(1000 * wall / args.rounds, 2),
              # Python function calls a label made: counted, not timed, so a busy machine cannot change it
              "function_calls_per_label": round(stats.total_calls / args.rounds),
              "objects_left_for_the_collector_per_label": cyclic,
              "statements_per_label": len(statements), **database, "statements": statements}
    print(f"database {result['database']}; {'label?next=1' if args.combined else 'next, then label'} through the {result['through']}: "
          f"{result['cpu_ms_per_label']} ms CPU per label ({result['cpu_ms_per_label_profiled']} ms under the profiler), "
          f"{result['function_calls_per_label']} Python function calls per label, "
          f"{cyclic:g} objects per label left in reference cycles for the garbage collector, "
          f"{len(statements)} SQL statements per label, {sum(s['ms'] for s in statements):.2f} ms in them:")
    if database:
        print("  the database's side: " + ", ".join(f"{key} {value}" for key, value in database.items()))
    for s in statements:
        print(f"  {s['ms']:7.3f} ms  {s['sql'][:160]}")
    print(text.getvalue())
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
