"""Peak memory of each export format at 10k and 100k labels: does it stay flat?

Run from the project root (a scratch SQLite database is made in a temporary VAR_DIR; set
DATABASE_URL to a scratch PostgreSQL database to measure there instead):

    .venv/bin/python -m bench.export_memory --sizes 10000,100000 --json bench/out/export_memory.json

For each size the bench bulk-creates that many labelled comparisons (synthetic texts of a few
hundred characters), then streams every format to /dev/null through the same generator the
admin, the API and the command use, and reports the peak of Python's allocations during the
export (tracemalloc), the bytes written and the time. Flat means the peak at 100k is about the
peak at 10k.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def populate(n: int, start: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from feedback_app.models import Comparison, PreferenceLabel, Profile, Prompt, Response

    User = get_user_model()
    rater, created = User.objects.get_or_create(username="export-bench")
    if created:
        Profile.objects.create(user=rater)
    filler = "Thank you for your patience while we look into your order. " * 4
    with transaction.atomic():
        prompts = Prompt.objects.bulk_create([Prompt(text=f"Request {start + i}: {filler}", source="bench") for i in range(n)], batch_size=5000)
        responses = Response.objects.bulk_create(
            [Response(prompt=p, text=f"{side} {p.pk} {filler}") for p in prompts for side in ("A", "B")], batch_size=5000)
        comparisons = Comparison.objects.bulk_create(
            [Comparison(prompt=p, response_a=responses[2 * i], response_b=responses[2 * i + 1], label_count=1, status="complete")
             for i, p in enumerate(prompts)], batch_size=5000)
        PreferenceLabel.objects.bulk_create(
            [PreferenceLabel(comparison=c, campaign_id=c.prompt.campaign_id, rater=rater, winner="a" if i % 3 else "b", strength=1 + i % 3, a_on_left=bool(i % 2),
                             time_on_task_ms=1000 + i % 5000) for i, c in enumerate(comparisons)], batch_size=5000)


def measure(fmt: str) -> dict:
    from feedback_app.selectors.exports import ExportFilters
    from feedback_app.services.exports import export_stream

    tracemalloc.start()
    started = time.perf_counter()
    written = 0
    with open(os.devnull, "wb") as sink:
        for chunk in export_stream(fmt=fmt, filters=ExportFilters()):
            sink.write(chunk)
            written += len(chunk)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"format": fmt, "peak_mib": round(peak / 2**20, 1), "bytes": written, "seconds": round(seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--formats", default="trl,raw,csv,parquet")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="export-memory-"))
    (scratch / "secret_key").write_text("bench-only-" + os.urandom(8).hex())
    os.environ.update({"VAR_DIR": str(scratch), "DJANGO_SETTINGS_MODULE": "feedback_app.settings", "LOG_LEVEL": "WARNING"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    results = []
    have = 0
    for size in (int(s) for s in args.sizes.split(",")):
        populate(size - have, have)
        have = size
        for fmt in args.formats.split(","):
            row = {"labels": size, **measure(fmt)}
            results.append(row)
            print(f"{size:>7} labels  {fmt:<8} peak {row['peak_mib']:>6} MiB  {row['bytes'] / 2**20:8.1f} MiB written  {row['seconds']:6.1f} s", flush=True)
    report = {"database": connection.vendor, "results": results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
