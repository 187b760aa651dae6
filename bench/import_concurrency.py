"""Raters labelling while a ~10 MB prompts file imports: their errors and label latency.

Run from the project root:

    .venv/bin/python -m bench.import_concurrency --mb 10 --raters 4              # the chunked import
    .venv/bin/python -m bench.import_concurrency --mb 10 --raters 4 --mode single # one transaction, as before

In a scratch VAR_DIR with a fresh SQLite database, the bench writes a prompts JSONL of about
``--mb`` MB of synthetic text (two responses a prompt), starts ``--raters`` processes that each
loop lease → label through the labeling services, and imports the file in this process: with
``import_file`` (parsed first, staged in IMPORT_CHUNK_RECORDS chunks, published at once) or, with
``--mode single``, the one-transaction ``prompts_import``. It prints the import's duration, the
raters' errors by kind, and the p50/p99/max of a lease+label round trip while the import ran.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.label_load import percentile

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("parcel refund order account invoice delivery address password card subscription billing warranty "
         "store manager weekend tracking number missing broken replace cancel upgrade plan fee charge twice "
         "please kindly sorry thanks today tomorrow week month help support policy return label").split()


def synthetic_text(rng: random.Random, words: int) -> str:
    """Return ``words`` random words of customer-service vocabulary, as sentences."""
    picked = [rng.choice(WORDS) for _ in range(words)]
    return " ".join(w.capitalize() + "." if i % 12 == 11 else w for i, w in enumerate(picked))


def write_prompts_file(path: Path, *, megabytes: float, seed: int = 0) -> int:
    """Write a prompts JSONL of about ``megabytes`` MB; return its line count."""
    rng = random.Random(seed)
    lines = 0
    with path.open("w", encoding="utf-8") as f:
        while f.tell() < megabytes * 1_000_000:
            lines += 1
            row = {"prompt": f"Request {lines}: " + synthetic_text(rng, 45),
                   "responses": [synthetic_text(rng, 55), synthetic_text(rng, 55)], "tags": ["bench"]}
            f.write(json.dumps(row) + "\n")
    return lines


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_app.settings")
    import django

    django.setup()
    from django.conf import settings

    # Pushes are hints; keep this bench off Redis.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def rater_loop(username: str, ready, stop, results) -> None:
    """Label once (warm-up), say so on ``ready``, then lease and label until ``stop``; put (samples, errors) on ``results``."""
    setup_django()
    from django.contrib.auth import get_user_model

    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next

    rater = get_user_model().objects.get(username=username)
    samples: list[tuple[float, float]] = []  # (start, seconds) of each lease+label
    errors: Counter = Counter()
    warm = assignment_lease_next(campaign=campaign_default(), rater=rater)
    label_record(campaign=campaign_default(), rater=rater, comparison_id=warm.comparison_id, submission=LabelSubmission(choice="left"))
    ready.put(username)
    while not stop.is_set():
        start = time.time()
        try:
            assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
            if assignment is None:
                time.sleep(0.05)
                continue
            label_record(campaign=campaign_default(), rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice="left"))
        except Exception as exc:  # counted: the figure this bench exists for
            errors[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
            continue
        samples.append((start, time.time() - start))
    results.put((samples, dict(errors)))


def prepare(*, raters: int, comparisons: int) -> list[str]:
    """Create raters and open comparisons for them; return the usernames."""
    from django.core.management import call_command
    from django.db import transaction

    from feedback_app.models import Comparison, Prompt, Response, Role
    from feedback_app.services.accounts import user_create

    call_command("migrate", verbosity=0)
    users = [user_create(username=f"rater{i}", role=Role.RATER, password=secrets.token_urlsafe(12)) for i in range(raters)]
    names = [(user.username, token) for user, _, token in users]
    with transaction.atomic():
        prompts = Prompt.objects.bulk_create([Prompt(text=f"Warm-up request {i}", source="bench") for i in range(comparisons)], batch_size=5000)
        responses = Response.objects.bulk_create([Response(prompt=p, text=f"Reply {s} {p.pk}") for p in prompts for s in "AB"], batch_size=5000)
        Comparison.objects.bulk_create([Comparison(prompt=p, response_a=responses[2 * i], response_b=responses[2 * i + 1])
                                        for i, p in enumerate(prompts)], batch_size=5000)
    return names




def http_rater(base: str, token: str, ready, stop, results) -> None:
    """As ``rater_loop``, through the HTTP API of the studio's web process (next, then label)."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    samples: list[tuple[float, float]] = []
    errors: Counter = Counter()
    ready.put(token)
    while not stop.is_set():
        start = time.time()
        try:
            lease = session.get(f"{base}/api/v1/comparisons/next/", timeout=60)
            if lease.status_code == 204:
                time.sleep(0.05)
                continue
            if lease.status_code != 200:
                errors[f"next {lease.status_code}"] += 1
                continue
            label = session.post(f"{base}/api/v1/comparisons/{lease.json()['id']}/label/", json={"choice": "left"}, timeout=60)
            if label.status_code != 201:
                errors[f"label {label.status_code}"] += 1
                continue
        except requests.RequestException as exc:
            errors[type(exc).__name__] += 1
            continue
        samples.append((start, time.time() - start))
    results.put((samples, dict(errors)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--raters", type=int, default=4)
    parser.add_argument("--comparisons", type=int, default=20_000, help="open comparisons for the raters")
    parser.add_argument("--mode", choices=["chunked", "single"], default="chunked")
    parser.add_argument("--http", action="store_true",
                        help="Raters label through the HTTP API of one daphne (the studio's shape: one web process, "
                             "the import in another) instead of each in a process of its own calling the services.")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="import-bench-"))
    os.environ.update({"VAR_DIR": str(scratch), "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}", "SECRET_KEY": secrets.token_urlsafe(40),
                       "REFIT_EVERY_N_LABELS": "0", "CELERY_TASK_ALWAYS_EAGER": "1", "LOG_LEVEL": "ERROR"})
    os.environ.pop("REDIS_URL", None)
    setup_django()
    source = scratch / "prompts.jsonl"
    lines = write_prompts_file(source, megabytes=args.mb)
    names = prepare(raters=args.raters, comparisons=args.comparisons)
    print(f"file: {source.stat().st_size / 1e6:.1f} MB, {lines} prompts; {args.raters} raters{' over HTTP (one daphne)' if args.http else ''}; mode {args.mode}")

    from django.db import connections

    connections.close_all()  # children open their own
    servers = []
    if args.http:
        import subprocess
        import threading
        from queue import Queue

        from feedback_app.devsupport import free_port, scratch_redis_start, wait_for_port

        redis, redis_url = scratch_redis_start(scratch / "redis")
        port = free_port()
        web = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "feedback_app.asgi:application"],
                               cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers = [web, redis]
        wait_for_port("127.0.0.1", port, timeout=60, process=web)
        ready, stop, results = Queue(), threading.Event(), Queue()
        workers = [threading.Thread(target=http_rater, args=(f"http://127.0.0.1:{port}", token, ready, stop, results), daemon=True)
                   for _, token in names]
    else:
        ctx = mp.get_context("spawn")
        ready, stop, results = ctx.Queue(), ctx.Event(), ctx.Queue()
        workers = [ctx.Process(target=rater_loop, args=(name, ready, stop, results)) for name, _ in names]
    for w in workers:
        w.start()
    for _ in workers:
        ready.get(timeout=300)
    time.sleep(3)  # a baseline: the raters label before the import starts

    from feedback_app.services.import_jobs import import_file
    from feedback_app.services.imports import prompts_import

    data = source.read_bytes()
    began = time.time()
    try:
        if args.mode == "chunked":
            import_file(kind="prompts", data=data, filename=source.name)
        else:
            prompts_import(data=data, filename=source.name)
        outcome = "ok"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    ended = time.time()
    time.sleep(1)
    stop.set()
    collected = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    for server in servers:
        server.terminate()
        server.wait(timeout=30)

    during = [s for samples, _ in collected for start, s in samples if began <= start <= ended]
    before = [s for samples, _ in collected for start, s in samples if start < began]
    errors: Counter = Counter()
    for _, errs in collected:
        errors.update(errs)
    print(f"import: {ended - began:.1f} s ({outcome})")
    print(f"labels before the import: {len(before)}; p50 {percentile(before, 50) * 1000:.0f} ms, p99 {percentile(before, 99) * 1000:.0f} ms")
    print(f"labels during the import: {len(during)}; p50 {percentile(during, 50) * 1000:.0f} ms, "
          f"p99 {percentile(during, 99) * 1000:.0f} ms, max {max(during, default=float('nan')) * 1000:.0f} ms")
    print(f"rater errors: {sum(errors.values())}" + "".join(f"\n  {n} x {what}" for what, n in errors.most_common()))


if __name__ == "__main__":
    main()
