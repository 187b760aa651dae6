"""Behaviour snapshot: a refactor check, not a benchmark (no timings anywhere).

    .venv/bin/python bench/behaviour_snapshot.py OUT_DIR                  # write the snapshot
    .venv/bin/python bench/behaviour_snapshot.py OUT_DIR --compare OTHER  # write it, then compare with OTHER
    .venv/bin/python bench/behaviour_snapshot.py --compare-only A B        # compare two snapshots

It builds a fixed studio from scratch in a temporary VAR_DIR (SQLite, Celery eager, no Redis):
users through ``manage.py add_user``, the first HH_ROWS rows of HH-RLHF harmless-base imported
as labelled pairs and every BITEXT_STRIDE-th Bitext request (BITEXT_ROWS of them) as prompts with two replies each
(texts exactly as in ../shared/data), then labels through the labeling services with fixed
choices. Every clock the product reads (``django.utils.timezone.now``) is a step clock the
script moves by hand, so the export bytes can be compared raw; ``secrets.token_hex``
(pseudonyms, API keys) and the ``random`` module (display order) are seeded. It then writes:

- ``export.<fmt>`` for every format, and ``export-<filter>.<fmt>`` for a few filters
  (``manage.py export_preferences``);
- ``refit.json``: two fast-tier reward refits at a fixed seed (training_run_request, then
  training_run_execute), their metrics without ``seconds``;
- ``api_session.json``: a scripted rater and researcher session over the HTTP API, every
  (method, path, status, body) with timestamps and token strings replaced by placeholders;
- ``db.json``: ``dumpdata feedback_app`` at the end (timings dropped, scratch paths replaced);
- ``commands.txt``: what the management commands printed.

It prints one ``sha256  name`` line per file; ``--compare`` exits 1 naming the files that
differ (and the first differing lines of text files).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import sys
import sysconfig
import tempfile
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from snapshot_compare import checksums, compare, json_text, placeholders, strip_timing  # noqa: E402  (beside this file)
from snapshot_pins import SeededSecrets, StepClock, environment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HH_FILE = DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"
BITEXT_FILE = DATA / "bitext-customer-support" / "customer_support_sample.csv"
HH_ROWS = 40
BITEXT_ROWS = 30
BITEXT_STRIDE = 150  # rows 0, 150, 300, ...: the file is sorted by intent, so this spans most of them
SERVICE_TURNS = 40
SEED = 0
T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt_timezone.utc)
PASSWORD = "snapshot password, not secret 42"
USERS = [("admin", "admin"), ("researcher", "researcher"), ("rater1", "rater"), ("rater2", "rater"), ("rater3", "rater")]


def internal_imports():
    """Every project name this script imports (not a command or a URL), in one place: adapt these after renames.

    Besides these, the script relies on: the commands add_user, import_preferences, import_prompts,
    export_preferences and dumpdata feedback_app; the settings named in ``environment`` and
    CHANNEL_LAYERS; the /api/v1/ URLs; and the product reading the time as ``timezone.now()`` and
    drawing pseudonyms and API keys with ``secrets.token_hex`` and display order with ``random``.
    """
    from feedback_app.models import TrainingRun  # noqa: F401
    from feedback_app.selectors.campaigns import campaign_default  # noqa: F401
    from feedback_app.selectors.exports import FORMATS  # noqa: F401
    from feedback_app.services.labeling import (  # noqa: F401
        LabelSubmission,
        assignment_skip,
        label_record,
        label_undo_last,
    )
    from feedback_app.services.leasing import assignment_lease_next  # noqa: F401
    from feedback_app.services.training import training_run_execute  # noqa: F401
    from feedback_app.services.training_runs import training_run_request  # noqa: F401

    return dict(locals())


# --------------------------------------------------------------------------------------------
# Input files: fixed slices of the real data, written to the scratch folder (never the project).


def hh_slice(path: Path) -> None:
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(HH_ROWS)]
    path.write_text("".join(lines), encoding="utf-8")


def bitext_slice(path: Path) -> list[str]:
    import csv

    with open(BITEXT_FILE, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[::BITEXT_STRIDE][: BITEXT_ROWS + 1]
    lines = []
    for row, other in zip(rows, rows[1:]):  # its own reply and the next request's
        responses = [row["response"], other["response"]]
        lines.append(json.dumps({"prompt": row["instruction"], "responses": responses, "tags": [row["intent"], row["category"].lower()],
                                 "metadata": {"intent": row["intent"], "category": row["category"]}}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sorted({row["intent"] for row in rows[:BITEXT_ROWS]})


# --------------------------------------------------------------------------------------------
# The snapshot.


class Snapshot:
    def __init__(self, out: Path, scratch: Path, clock: StepClock) -> None:
        self.out, self.scratch, self.clock = out, scratch, clock
        self.names = internal_imports()
        site = {sysconfig.get_paths()["purelib"], os.path.realpath(sysconfig.get_paths()["purelib"])}
        paths = [(str(out), "<OUT>"), (str(scratch), "<SCRATCH>"), (str(ROOT), "<ROOT>"), *((path, "<SITE-PACKAGES>") for path in site)]
        self.paths = sorted(paths, key=lambda item: len(item[0]), reverse=True)  # the longest first: site-packages may lie under ROOT
        self.log: list[str] = []

    def normalise_text(self, text: str) -> str:
        """Replace the paths that differ between checkouts and runs: the output, scratch and site-packages folders."""
        for path, name in self.paths:
            text = text.replace(path, name)
        return text

    def write(self, name: str, value) -> None:
        (self.out / name).write_text(self.normalise_text(json_text(value)), encoding="utf-8")

    def command(self, *args: str) -> None:
        from django.core.management import call_command

        self.clock.tick()
        stdout, stderr = io.StringIO(), io.StringIO()
        call_command(*args, stdout=stdout, stderr=stderr)
        shown = " ".join(self.normalise_text(a) for a in args)
        self.log.append(f"$ manage.py {shown}\n{self.normalise_text(stdout.getvalue())}{self.normalise_text(stderr.getvalue())}")

    def run(self) -> None:
        from django.conf import settings
        from django.contrib.auth import get_user_model

        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}  # pushes go nowhere
        self.command("migrate", "--verbosity", "0")
        for username, role in USERS:
            self.command("add_user", username, "--role", role, "--password", PASSWORD)
        User = get_user_model()
        self.users = {name: User.objects.get(username=name) for name, _ in USERS}

        hh = self.scratch / "hh-harmless-first40.jsonl"
        hh_slice(hh)
        self.command("import_preferences", str(hh), "--skip-invalid")
        bitext = self.scratch / "bitext-every150th.jsonl"
        self.intents = bitext_slice(bitext)
        self.command("import_prompts", str(bitext), "--required-labels", "2")

        self.label_with_services()
        self.exports()
        refits = [self.refit("after service labels")]
        self.api_session()
        refits.append(self.refit("after the API session"))
        self.write("refit.json", refits)
        self.dump_db()
        (self.out / "commands.txt").write_text("\n".join(self.log), encoding="utf-8")

    def label_with_services(self) -> None:
        """Three raters take turns: lease, then label (or skip) with choices fixed by the turn number."""
        n = self.names
        LabelSubmission = n["LabelSubmission"]
        raters = [self.users[f"rater{i}"] for i in (1, 2, 3)]
        choices = ["left", "right", "left", "tie", "right", "both_bad", "left"]
        turn = 0
        idle = 0
        while idle < len(raters) and turn < SERVICE_TURNS:  # leave some for the API session
            rater = raters[turn % len(raters)]
            turn += 1
            self.clock.tick()
            assignment = n["assignment_lease_next"](campaign=n["campaign_default"](), rater=rater)
            if assignment is None:
                idle += 1
                continue
            idle = 0
            comparison_id = assignment.comparison_id
            self.clock.tick(7 + turn % 5)
            if turn % 11 == 0:
                n["assignment_skip"](campaign=n["campaign_default"](), rater=rater, comparison_id=comparison_id)
                continue
            submission = LabelSubmission(
                choice=choices[turn % len(choices)],
                strength=1 + turn % 3,
                criteria={"helpfulness": "left", "honesty": "tie"} if turn % 4 == 0 else {},
                rationale=f"fixed rationale {turn}" if turn % 5 == 0 else "",
                flags=("unsafe",) if turn % 7 == 0 else ("private",) if turn % 13 == 0 else (),
                time_on_task_ms=None if turn % 2 else 1000 + turn,
            )
            n["label_record"](campaign=n["campaign_default"](), rater=rater, comparison_id=comparison_id, submission=submission)
            if turn == 6:  # one undo, then the same comparison labelled again, differently
                self.clock.tick()
                assignment = n["label_undo_last"](campaign=n["campaign_default"](), rater=rater)
                self.clock.tick()
                n["label_record"](campaign=n["campaign_default"](), rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice="right", strength=3))

    def exports(self) -> None:
        for fmt in self.names["FORMATS"]:
            self.command("export_preferences", str(self.out / f"export.{fmt}"), "--format", fmt)
        filters = {
            "tag": ["--tag", self.intents[0], "--tag", self.intents[1]],
            "exclude-flagged": ["--exclude-flagged"],
            "rater": ["--rater", "rater2"],
            "dates": ["--from", (T0 + timedelta(seconds=60)).isoformat(), "--to", (T0 + timedelta(seconds=400)).isoformat()],
        }
        for name, args in filters.items():
            for fmt in ("trl", "raw"):
                self.command("export_preferences", str(self.out / f"export-{name}.{fmt}"), "--format", fmt, *args)

    def refit(self, when: str) -> dict:
        import torch

        n = self.names
        torch.set_num_threads(1)
        torch.manual_seed(SEED)
        random.seed(SEED)
        import numpy as np

        np.random.seed(SEED)
        self.clock.tick()
        run = n["training_run_request"](kind=n["TrainingRun"].Kind.REWARD_FAST, trigger=n["TrainingRun"].Trigger.CLI,
                                        user=self.users["researcher"])
        run.refresh_from_db()
        status_after_request = run.status  # eager Celery: the run has executed once its request committed
        self.clock.tick()
        n["training_run_execute"](run_id=run.pk)  # a queued run runs now; one that ran already is left alone
        run.refresh_from_db()
        version = run.reward_model_version
        metrics = strip_timing(run.metrics, clock_year=T0.year)
        return {
            "when": when, "run_id": run.pk, "status_after_request": status_after_request, "status": run.status, "error": run.error,
            "metrics": metrics,
            "version": None if version is None else {
                "name": version.name, "status": version.status, "tier": version.tier, "backbone": version.backbone,
                "data_range": version.data_range, "parent": version.parent.name if version.parent_id else None,
            },
        }

    def api_session(self) -> None:
        from rest_framework.test import APIClient

        record: list[dict] = []

        def call(client, method: str, path: str, body=None):
            self.clock.tick()
            send = getattr(client, method.lower())
            response = send(path) if body is None else send(path, body, format="json")
            entry = {"method": method, "path": path, "request": body, "status": response.status_code}
            if getattr(response, "streaming", False):
                content = b"".join(response.streaming_content)
                entry["content_type"] = response.get("Content-Type")
                entry["content_disposition"] = response.get("Content-Disposition")
                entry["sha256"] = hashlib.sha256(content).hexdigest()
                if entry["content_type"] and "json" in entry["content_type"]:
                    entry["lines"] = [placeholders(json.loads(line)) for line in content.decode().splitlines()]
                parsed = None
            else:
                parsed = json.loads(response.content) if response.content and "json" in response.get("Content-Type", "") else None
                entry["body"] = placeholders(parsed)
                if parsed is None and response.content:
                    entry["text"] = response.content.decode(errors="replace")[:2000]
            record.append(entry)
            return response, parsed

        anonymous = APIClient()
        call(anonymous, "GET", "/api/v1/comparisons/next/")
        call(anonymous, "POST", "/api/v1/auth/token/", {"username": "rater1", "password": "wrong password"})
        _, issued = call(anonymous, "POST", "/api/v1/auth/token/", {"username": "rater1", "password": PASSWORD})
        rater = APIClient()
        rater.credentials(HTTP_AUTHORIZATION=f"Token {issued['token']}")

        _, first = call(rater, "GET", "/api/v1/comparisons/next/")
        good = {"choice": "left", "strength": 3, "criteria": {"helpfulness": "left"}, "rationale": "kinder", "flags": []}
        call(rater, "POST", f"/api/v1/comparisons/{first['id']}/label/", good)
        _, second = call(rater, "GET", "/api/v1/comparisons/next/")
        call(rater, "POST", f"/api/v1/comparisons/{second['id']}/skip/", {})
        call(rater, "POST", f"/api/v1/comparisons/{second['id']}/label/", {"choice": "tie"})  # skipped: not leased
        _, third = call(rater, "GET", "/api/v1/comparisons/next/")
        for bad in ({"choice": "up"}, {"choice": "left", "strength": 5}, {"choice": "left", "criteria": {"style": "left"}},
                    {"choice": "left", "flags": ["spam"]}, {}):
            call(rater, "POST", f"/api/v1/comparisons/{third['id']}/label/", bad)
        call(rater, "POST", f"/api/v1/comparisons/{third['id']}/label/", {"choice": "right", "strength": 1, "flags": ["unsafe"]})
        call(rater, "POST", f"/api/v1/comparisons/{third['id']}/label/", {"choice": "right", "strength": 1, "flags": ["unsafe"]})  # idempotent
        call(rater, "POST", f"/api/v1/comparisons/{first['id']}/label/", good)  # repeated: idempotent
        call(rater, "POST", f"/api/v1/comparisons/{first['id']}/label/", {**good, "choice": "right"})  # conflict
        call(rater, "POST", "/api/v1/comparisons/999999/label/", {"choice": "tie"})
        call(rater, "GET", "/api/v1/stats/")  # a rater: forbidden
        call(rater, "GET", "/api/v1/export/preferences/?format=trl")
        while True:  # the rest of what is left for rater1
            response, lease = call(rater, "GET", "/api/v1/comparisons/next/")
            if response.status_code != 200:
                break
            call(rater, "POST", f"/api/v1/comparisons/{lease['id']}/label/", {"choice": "left" if lease["id"] % 2 else "both_bad"})
        call(rater, "DELETE", "/api/v1/auth/token/")
        call(rater, "GET", "/api/v1/comparisons/next/")  # the revoked token

        _, issued = call(anonymous, "POST", "/api/v1/auth/token/", {"username": "researcher", "password": PASSWORD})
        researcher = APIClient()
        researcher.credentials(HTTP_AUTHORIZATION=f"Token {issued['token']}")
        for query in ("format=trl", "format=raw", "format=csv", "format=parquet", f"format=raw&tags={self.intents[2]}",
                      "format=trl&exclude_flagged=true", "format=raw&rater=rater1", "format=nope"):
            call(researcher, "GET", f"/api/v1/export/preferences/?{query}")
        _, index = call(researcher, "GET", "/api/v1/stats/")
        for name in sorted(index or {}):
            call(researcher, "GET", f"/api/v1/stats/{name}/")
        call(researcher, "GET", "/api/v1/stats/labels/?hours=1")
        call(researcher, "GET", "/api/v1/stats/no-such-stats/")
        _, runs = call(researcher, "GET", "/api/v1/training-runs/")
        for run in runs or []:
            call(researcher, "GET", f"/api/v1/training-runs/{run['id']}/")
        call(researcher, "GET", "/api/v1/training-runs/999999/")
        self.write("api_session.json", record)

    def dump_db(self) -> None:
        from django.core.management import call_command

        stdout = io.StringIO()
        call_command("dumpdata", "feedback_app", "--indent", "1", "--all", stdout=stdout)
        rows = json.loads(stdout.getvalue())
        self.write("db.json", [strip_timing(row, clock_year=T0.year) for row in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, nargs="?", help="Folder for the snapshot (emptied first).")
    parser.add_argument("--compare", type=Path, metavar="OTHER_DIR", help="After writing, compare with this snapshot.")
    parser.add_argument("--compare-only", type=Path, nargs=2, metavar=("A", "B"), help="Only compare two snapshots.")
    parser.add_argument("--keep-scratch", action="store_true", help="Keep the scratch VAR_DIR (its path is printed).")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":  # set and dict orders of strings, the same every run
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    if args.compare_only:
        return compare(*args.compare_only)
    if args.out is None:
        parser.error("OUT_DIR is required (or --compare-only A B)")

    out = args.out.absolute()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scratch = Path(tempfile.mkdtemp(prefix="behaviour-snapshot-"))
    (scratch / "var").mkdir()
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(environment(scratch))
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    clock = StepClock(T0)
    seeded = SeededSecrets()
    random.seed(SEED)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch("django.utils.timezone.now", clock))
            stack.enter_context(mock.patch.object(secrets, "token_hex", seeded.token_hex))
            import django

            django.setup()
            Snapshot(out, scratch, clock).run()
    finally:
        if args.keep_scratch:
            print(f"scratch kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    for name, digest in checksums(out).items():
        print(f"{digest}  {name}")
    if args.compare:
        return compare(args.compare.absolute(), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
