"""The labeling goal run, repeated: how far its figures spread on this machine, and in how many runs each goal held.

One ``label_load`` run gives one p99, and on a shared 2-core VM the same code measured a call p99 of 46 to 113 ms from one
run to the next (bench/README.md, sessions 47 and 48): one figure cannot say whether a goal holds. This runs
``label_load`` ``--runs`` times, each on a fresh database and ``VAR_DIR`` (on PostgreSQL a database of its own, created
from ``DATABASE_URL``'s server and dropped after), and prints each run's figures, their spread (min, median, max) and
how many runs met each goal of issue 12: labels/s, the call p99 and the server's CPU a label, with a clean audit.

    DATABASE_URL=postgres://... .venv/bin/python -m bench.goal_runs --runs 5
    .venv/bin/python -m bench.goal_runs --runs 3 -- --serve granian --combined --generator wrk --seconds 20   # other load

Without ``--`` each run is the goal run: ``label_load`` with the arguments in ``GOAL_RUN`` (the learning workers on).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
GOAL_RUN = ["--serve", "granian", "--web-workers", "2", "--combined", "--generator", "wrk", "--workers",
            "--warmup-seconds", "20", "--seconds", "30", "--think-ms", "130"]
# issue 12 on PostgreSQL: at least this many labels/s, a call p99 at most this, server CPU a label at most this
GOALS = {"labels_per_second": 300.0, "p99_ms": 100.0, "server_cpu_ms_per_label": 3.0}


def database_named(url: str, name: str) -> str:
    """``url`` (a PostgreSQL URL) naming database ``name`` instead of its own; the rest (user, host, options) as it was."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def is_postgresql(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in ("postgres", "postgresql", "pgsql")


def _server_command(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(database_named(url, "postgres"), autocommit=True) as connection:
        connection.execute(sql)


def figures(result: dict) -> dict:
    """One ``label_load --json`` result's figures that the goals speak of. The p99 is of every call together where ``wrk``
    measured it, else (``--generator httpx``, which times each kind of call apart) the highest of the calls' p99s."""
    latency = result["latency_ms"]
    p99 = latency["all calls"]["p99"] if "all calls" in latency else max(call["p99"] for call in latency.values())
    return {"labels_per_second": result["labels_per_second"], "p99_ms": p99,
            "server_cpu_ms_per_label": result["server_cpu_ms_per_label"], "audit_ok": result["audit_ok"]}


def met(run: dict, goals: dict = GOALS) -> dict[str, bool]:
    """Which goals ``run`` (``figures``) met; a run whose audit failed met none."""
    clean = bool(run["audit_ok"])
    cpu = run["server_cpu_ms_per_label"]
    return {"labels_per_second": clean and run["labels_per_second"] >= goals["labels_per_second"],
            "p99_ms": clean and run["p99_ms"] <= goals["p99_ms"],
            "server_cpu_ms_per_label": clean and cpu is not None and cpu <= goals["server_cpu_ms_per_label"]}


def summary(runs: list[dict], goals: dict = GOALS) -> dict:
    """The spread of ``runs`` (``figures`` each): min, median and max of each figure, and how many runs met each goal."""
    spread = {}
    for name in ("labels_per_second", "p99_ms", "server_cpu_ms_per_label"):
        values = [run[name] for run in runs if run[name] is not None]
        spread[name] = {"min": min(values), "median": statistics.median(values), "max": max(values)} if values else None
    held = {name: sum(met(run, goals)[name] for run in runs) for name in goals}
    return {"runs": len(runs), "audits_clean": sum(bool(run["audit_ok"]) for run in runs), "spread": spread, "goals": goals,
            "runs_meeting": held}


def run_once(load_args: list[str], *, database_url: str | None, scratch: Path, index: int, command: list[str] | None = None) -> dict:
    """One ``label_load`` run on a fresh ``VAR_DIR`` and, on PostgreSQL, a fresh database (dropped after, whatever happens);
    return its JSON result. ``command`` replaces ``python -m bench.label_load`` (tests)."""
    var_dir, out = scratch / f"var-{index}", scratch / f"run-{index}.json"
    var_dir.mkdir()
    env = {**os.environ, "VAR_DIR": str(var_dir)}
    env.setdefault("SECRET_KEY", "goal-runs-" + secrets.token_hex(20))
    name = None
    if is_postgresql(database_url):
        name = f"goal_run_{index}_{secrets.token_hex(4)}"
        _server_command(database_url, f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = database_named(database_url, name)
    else:
        env.pop("DATABASE_URL", None)  # SQLite in the run's own VAR_DIR
    try:
        finished = subprocess.run([*(command or [sys.executable, "-m", "bench.label_load"]), *load_args, "--json", str(out)],
                                  cwd=ROOT, env=env)
        if not out.exists():
            raise RuntimeError(f"label_load run {index} wrote no result (exit status {finished.returncode})")
        return json.loads(out.read_text())
    finally:
        if name is not None:
            _server_command(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None, *, command: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, load_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, list(GOAL_RUN))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="label_load runs, one after the other")
    p.add_argument("--json", type=Path, help="also write every run's result and the summary here")
    args = p.parse_args(ours)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    database_url = os.environ.get("DATABASE_URL")
    scratch = Path(tempfile.mkdtemp(prefix="goal-runs-"))
    results = []
    try:
        for index in range(args.runs):
            result = run_once(load_args, database_url=database_url, scratch=scratch, index=index, command=command)
            results.append(result)
            run = figures(result)
            steal = result.get("machine_steal_share")
            print(f"run {index + 1}/{args.runs}: {run['labels_per_second']} labels/s, call p99 {run['p99_ms']} ms, "
                  f"server CPU {run['server_cpu_ms_per_label']} ms a label, audit {'clean' if run['audit_ok'] else 'FAILED'}"
                  f"{'' if steal is None else f', host took {steal:.1%} of the machine'}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    found = summary([figures(result) for result in results])
    print(f"{found['runs']} runs of label_load {' '.join(load_args)}; audits clean: {found['audits_clean']}")
    for name, goal in GOALS.items():
        spread = found["spread"][name]
        bound = ">=" if name == "labels_per_second" else "<="
        shown = "none" if spread is None else f"min {spread['min']}, median {spread['median']}, max {spread['max']}"
        print(f"  {name}: {shown}; goal {bound} {goal:g} met in {found['runs_meeting'][name]} of {found['runs']}")
    if args.json:
        args.json.write_text(json.dumps({"summary": found, "results": results}, indent=1))
    return 0 if found["audits_clean"] == found["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
