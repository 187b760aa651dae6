"""Faults under load: kill each process of a running studio, lose the broker's queue, fill the disk.

Run from the project root, as root (it mounts a small tmpfs for VAR_DIR, so the disk it fills
is its own, never the machine's):

    .venv/bin/python -m bench.faults --json bench/out/faults.json

It starts the real studio (``manage.py serve``: embedded Redis, daphne, the Celery workers on
``default``, ``score`` and ``gpu``, beat) in a scratch VAR_DIR on that tmpfs, with prompts and
comparisons made from the Bitext requests in ../shared/data, automatic refits every
``--refit-every`` labels and a supply that always has prompts to generate for. ``--raters``
simulated raters label through the HTTP API at a bounded rate while the faults come one after
another: kill -9 of the web server, of each worker (the gpu worker while a refit runs) and of
beat and Redis; a FLUSHALL of Redis (the broker's queues and every message in them lost); the
disk filled for ``--full-seconds`` and then freed. After each fault it waits (at most
``--recovery-timeout`` s) until the web answers again and every automatic loop has worked once
more with no one touching it: an automatic refit whose message was sent after the fault (queued
then, or re-sent by the reaper) succeeded, the supply made a comparison, the score worker answered
a scoring request. At the end it stops the studio with Ctrl-C, as a person would, and
checks the labels: every acknowledged label stored, none twice.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

from bench.served import serve_start, serve_stop

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
LOOPS = ("web", "refit", "supply", "score")


def bitext_rows() -> list[dict[str, str]]:
    with open(DATA / "bitext-customer-support" / "customer_support_sample.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class Raters:
    """Simulated raters labelling through the API at a bounded rate; they record what was acknowledged."""

    def __init__(self, base: str, raters: list[tuple[str, str]], rate: float, seed: int) -> None:
        self.base, self.interval = base, 1.0 / rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acknowledged: set[tuple[str, int]] = set()
        self.statuses: dict[str, int] = {}
        self.events: list[tuple[float, bool]] = []  # (monotonic time, the call succeeded)
        self.rng = random.Random(seed)
        self.threads = [threading.Thread(target=self._run, args=rater, daemon=True) for rater in raters]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _count(self, key: str) -> None:
        with self.lock:
            self.statuses[key] = self.statuses.get(key, 0) + 1

    def _run(self, username: str, token: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                response = session.get(f"{self.base}/api/v1/comparisons/next/", timeout=30)
                self._count(str(response.status_code))
                if response.status_code == 200:
                    comparison = response.json()["id"]
                    choice = self.rng.choice(["left", "right", "left", "right", "tie"])
                    response = session.post(f"{self.base}/api/v1/comparisons/{comparison}/label/",
                                            json={"choice": choice, "strength": self.rng.randint(1, 3)}, timeout=30)
                    self._count(f"label {response.status_code}")
                    if response.status_code in (200, 201):
                        with self.lock:
                            self.acknowledged.add((username, comparison))
                ok = response.status_code < 500
            except requests.RequestException:
                self._count("connection error")
                ok = False
            with self.lock:
                self.events.append((time.monotonic(), ok))
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))


class Studio:
    """``manage.py serve`` in a scratch VAR_DIR on a tmpfs of its own."""

    def __init__(self, args) -> None:
        self.args = args
        self.scratch = Path(tempfile.mkdtemp(prefix="faults-"))
        self.var = self.scratch / "var"
        self.var.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.disk_mb}m,mode=0700", "tmpfs", str(self.var)], check=True)
        sys.path.insert(0, str(ROOT))
        from feedback_app.devsupport import free_port

        self.port, redis_port = free_port(), free_port()
        (self.var / "secret_key").write_text("faults-bench-" + os.urandom(8).hex())
        self.env = {**os.environ, "VAR_DIR": str(self.var), "MODEL_STORE": str(self.scratch / "models"),
                    "EMBEDDED_REDIS_PORT": str(redis_port), "REFIT_EVERY_N_LABELS": str(args.refit_every),
                    "SUPPLY_OPEN_TARGET": "100000", "SUPPLY_BATCH_PROMPTS": "2", "SUPPLY_CANDIDATES": "2",
                    "GENERATION_MAX_NEW_TOKENS": "32", "TRAINING_HEARTBEAT_TIMEOUT": "60", "LOG_LEVEL": "WARNING",
                    "DJANGO_SETTINGS_MODULE": "feedback_app.settings", "CELERY_TASK_ALWAYS_EAGER": "0"}
        for name in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(name, None)
        os.environ.clear()
        os.environ.update(self.env)
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def prepare(self, rows: list[dict[str, str]]) -> tuple[list[tuple[str, str]], str]:
        """Migrate, make the users, import prompts (some with two replies); return (rater, token) pairs and a researcher's token."""
        import django

        django.setup()
        from django.core.management import call_command

        from feedback_app.models import Role
        from feedback_app.services.accounts import user_create
        from feedback_app.services.imports import prompts_import

        call_command("migrate", verbosity=0)
        from django.conf import settings

        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}  # nothing listens yet
        tokens = [(f"rater{i}", user_create(username=f"rater{i}", role=Role.RATER)[2]) for i in range(self.args.raters)]
        researcher = user_create(username="researcher", role=Role.RESEARCHER)[2]
        rng = random.Random(self.args.seed)
        rng.shuffle(rows)
        paired = rows[: self.args.comparisons]
        lines = [json.dumps({"prompt": row["instruction"], "responses": [row["response"], other["response"]], "tags": [row["intent"]]})
                 for row, other in zip(paired, paired[1:] + paired[:1]) if other["response"] != row["response"]]
        lines += [json.dumps({"prompt": row["instruction"], "tags": [row["intent"]]})
                  for row in rows[self.args.comparisons: self.args.comparisons + self.args.prompts]]
        # Two labels per comparison, so the raters never run dry while the supply (slow on a CPU) catches up.
        prompts_import(data="\n".join(lines).encode(), filename="bitext-faults.jsonl", required_labels=2)
        from django.db import connections

        connections.close_all()
        return tokens, researcher

    def start(self) -> None:
        self.process = serve_start(port=self.port, env=self.env, log_path=self.scratch / "serve.log")

    def child(self, role: str) -> psutil.Process | None:
        """Return the supervisor's direct child that plays ``role``."""
        for proc in psutil.Process(self.process.pid).children():
            try:
                cmd = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if (role == "web" and "daphne" in cmd) or (role == "redis" and "redis-server" in cmd) \
                    or (role == "beat" and " beat " in f"{cmd} ") or (role.startswith("worker ") and f"-Q {role.split()[1]} " in f"{cmd} "):
                return proc
        return None

    def stop(self) -> float:
        return serve_stop(self.process)

    def cleanup(self) -> None:
        subprocess.run(["umount", "-l", str(self.var)], check=False)
        if not self.args.keep:
            shutil.rmtree(self.scratch, ignore_errors=True)


def loops_since(t0, *, base: str, researcher: str, need=("refit", "supply", "score")) -> dict[str, bool]:
    """Which of the automatic loops in ``need`` have worked since ``t0`` (a database timestamp)."""
    from django.db import connections

    from feedback_app.models import Comparison, TrainingRun

    state = {}
    if "refit" in need:  # an automatic refit whose message was sent after the fault (queued or re-sent then), done
        from django.db.models import Q

        state["refit"] = TrainingRun.objects.filter(Q(created_at__gt=t0) | Q(enqueued_at__gt=t0), trigger=TrainingRun.Trigger.AUTO,
                                                    status=TrainingRun.Status.SUCCEEDED).exists()
    if "supply" in need:
        state["supply"] = Comparison.objects.filter(policy_version__isnull=False, created_at__gt=t0).exists()
    connections.close_all()
    if "score" in need:
        try:
            response = requests.post(f"{base}/api/v1/score/", headers={"Authorization": f"Token {researcher}"},
                                     json={"prompt": "Where is my parcel?", "responses": ["It ships today.", "No."]}, timeout=90)
            state["score"] = response.status_code == 200
        except requests.RequestException:
            state["score"] = False
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raters", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1.0, help="Labels per second per rater (an upper bound).")
    parser.add_argument("--comparisons", type=int, default=3500, help="Imported comparisons (two replies each, two labels each).")
    parser.add_argument("--prompts", type=int, default=400, help="Imported prompts that wait for the generator.")
    parser.add_argument("--refit-every", type=int, default=25)
    parser.add_argument("--disk-mb", type=int, default=96, help="Size of the tmpfs that holds VAR_DIR.")
    parser.add_argument("--full-seconds", type=float, default=20.0)
    parser.add_argument("--recovery-timeout", type=float, default=150.0)
    parser.add_argument("--faults", default="web,worker default,worker gpu,worker score,beat,redis,flushall,disk",
                        help="Comma-separated, in order.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder (logs) for a look.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench mounts a small tmpfs for VAR_DIR, so the disk it fills is its own")

    studio = Studio(args)
    results = []
    raters = None
    try:
        tokens, researcher = studio.prepare(bitext_rows())
        studio.start()
        from django.utils import timezone

        raters = Raters(studio.base, tokens, args.rate, args.seed)
        raters.start()
        print("warming up: first refit, first supplied comparison, first score ...", flush=True)
        warm_start = time.monotonic()
        t0 = timezone.now()
        while time.monotonic() - warm_start < 600 and not all(loops_since(t0, base=studio.base, researcher=researcher).values()):
            time.sleep(5)
        print(f"warm after {time.monotonic() - warm_start:.0f} s", flush=True)
        for fault in [f.strip() for f in args.faults.split(",") if f.strip()]:
            results.append(inject(fault, studio=studio, raters=raters, researcher=researcher, args=args))
            row = results[-1]
            print(f"{fault:15s} outage {row['web_outage_s']:6.1f} s  back: " + ", ".join(
                f"{k} {v:.0f} s" if v is not None else f"{k} NOT BACK" for k, v in row["back_after_s"].items()), flush=True)
        raters.close()
        time.sleep(2)
        shutdown_s = studio.stop()
        audit = audit_labels(raters)
        report = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "raters": args.raters, "rate_per_rater": args.rate,
                  "faults": results, "audit": audit, "statuses": raters.statuses, "shutdown_s": round(shutdown_s, 1),
                  "serve_log_tracebacks": (studio.scratch / "serve.log").read_text(errors="replace").count("Traceback")}
        print_table(report)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2))
        ok = audit["lost"] == 0 and audit["duplicates"] == 0 and all(v is not None for r in results for v in r["back_after_s"].values())
        return 0 if ok else 1
    finally:
        if raters is not None:
            raters.close()
        studio.stop()
        studio.cleanup()


def inject(fault: str, *, studio: Studio, raters: Raters, researcher: str, args) -> dict:
    """Cause one fault, then time the web outage and each loop's return."""
    from django.db import connections
    from django.utils import timezone

    from feedback_app.models import TrainingRun

    if fault == "worker gpu":  # mid-refit, when one comes within a minute
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).exists():
            time.sleep(0.5)
        connections.close_all()
    t0, started = timezone.now(), time.monotonic()
    filler = None
    if fault in ("web", "beat", "redis") or fault.startswith("worker "):
        victim = studio.child(fault)
        if victim is None:
            raise SystemExit(f"no child process plays {fault!r}; is the studio up?")
        victim.kill()
    elif fault == "flushall":
        import redis

        redis.Redis.from_url(studio.redis_url).flushall()
    elif fault == "disk":
        filler = studio.var / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(args.full_seconds)
        filler.unlink()
    else:
        raise SystemExit(f"unknown fault {fault!r}")
    back: dict[str, float | None] = {loop: None for loop in LOOPS}
    outage = None
    while time.monotonic() - started < args.recovery_timeout and any(v is None for v in back.values()):
        time.sleep(2)
        if back["web"] is None:
            outage, back["web"] = web_outage(raters, since=started)
        waiting = [loop for loop in ("refit", "supply", "score") if back[loop] is None]
        for loop, ok in loops_since(t0, base=studio.base, researcher=researcher, need=waiting).items():
            if ok and back[loop] is None:
                back[loop] = time.monotonic() - started
    if outage is None:  # the web never answered again
        outage = time.monotonic() - started
    return {"fault": fault, "web_outage_s": round(outage, 1), "back_after_s": {k: (round(v, 1) if v is not None else None) for k, v in back.items()}}


def web_outage(raters: Raters, *, since: float) -> tuple[float | None, float | None]:
    """Return (how long the raters' calls failed, when they succeeded again after ``since``), or
    (None, None) while they still fail: the outage runs from the first failed call to the next
    call that succeeded."""
    with raters.lock:
        events = [(t, ok) for t, ok in raters.events if t >= since]
    first_failure = next((t for t, ok in events if not ok), None)
    if first_failure is None:
        first_success = next((t for t, ok in events if ok), None)
        return (0.0, first_success - since) if first_success is not None else (None, None)
    recovered = next((t for t, ok in events if ok and t > first_failure), None)
    return (recovered - first_failure, recovered - since) if recovered is not None else (None, None)


def audit_labels(raters: Raters) -> dict:
    """Compare what raters were told was stored with what the database holds."""
    from django.db.models import Count

    from feedback_app.models import PreferenceLabel

    labels = PreferenceLabel.objects.filter(rater__isnull=False)
    stored = set(labels.values_list("rater__username", "comparison_id"))
    duplicates = labels.values("rater_id", "comparison_id").annotate(n=Count("id")).filter(n__gt=1).count()
    return {"acknowledged": len(raters.acknowledged), "stored": len(stored), "lost": len(raters.acknowledged - stored),
            "duplicates": duplicates, "unacknowledged": len(stored - raters.acknowledged)}


def print_table(report: dict) -> None:
    print()
    print("| fault | web outage (s) | " + " | ".join(f"{loop} back (s)" for loop in LOOPS) + " |")
    print("|---|---:|" + "---:|" * len(LOOPS))
    for row in report["faults"]:
        cells = [f"{row['back_after_s'][loop]:.0f}" if row["back_after_s"][loop] is not None else "**not back**" for loop in LOOPS]
        print(f"| {row['fault']} | {row['web_outage_s']:.1f} | " + " | ".join(cells) + " |")
    audit = report["audit"]
    print(f"\nlabels acknowledged {audit['acknowledged']}, stored {audit['stored']}, lost {audit['lost']}, "
          f"duplicates {audit['duplicates']}, stored without an acknowledgement {audit['unacknowledged']}")
    print(f"shutdown with Ctrl-C: {report['shutdown_s']} s; tracebacks in the studio's log: {report['serve_log_tracebacks']}")


if __name__ == "__main__":
    sys.exit(main())
