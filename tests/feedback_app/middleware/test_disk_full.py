"""Disk full: 503 with a clear message, nothing acknowledged lost, and recovery without a restart."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import OperationalError
from django.test import RequestFactory

from feedback_app.middleware.disk_full import DISK_FULL_MESSAGE, DiskFullMiddleware, is_disk_full

ROOT = Path(__file__).resolve().parents[3]


def test_disk_full_errors_are_recognised_through_their_causes():
    """ENOSPC, SQLite's "database or disk is full" and PostgreSQL's SQLSTATE 53100 are disk full; others are not."""
    wrapped = OperationalError("database or disk is full")
    wrapped.__cause__ = sqlite3.OperationalError("database or disk is full")
    assert is_disk_full(wrapped)
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))

    class DiskFull(Exception):
        sqlstate = "53100"

    pg = OperationalError("could not extend file")
    pg.__cause__ = DiskFull()
    assert is_disk_full(pg)
    assert not is_disk_full(OperationalError("no such table: x"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("database or disk is full"))


def test_the_middleware_answers_503_with_retry_after_only_for_disk_full():
    middleware = DiskFullMiddleware(lambda request: None)
    api = middleware.process_exception(RequestFactory().post("/api/v1/comparisons/1/label/"), OSError(errno.ENOSPC, "full"))
    assert api.status_code == 503 and api["Retry-After"] and json.loads(api.content) == {"detail": DISK_FULL_MESSAGE}
    page = middleware.process_exception(RequestFactory().post("/label/1/"), OSError(errno.ENOSPC, "full"))
    assert page.status_code == 503 and DISK_FULL_MESSAGE in page.content.decode()
    assert middleware.process_exception(RequestFactory().get("/"), ValueError("boom")) is None


def _call(base: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")[:500]}


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MiB tmpfs of its own (never the machine's disk); skipped where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write a filler file until the disk is full; return it."""
    filler = disk / "filler"
    with open(filler, "wb") as out:
        block = b"\0" * (1 << 20)
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    for size in (1 << 16, 1 << 12, 1 << 9, 1):  # the last partial blocks too
        try:
            with open(disk / f"crumb-{size}", "wb") as out:
                while True:
                    out.write(b"\0" * size)
                    out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_answers_503_loses_nothing_and_recovers_without_a_restart(small_disk, redis_url):
    from feedback_app.devsupport import free_port, wait_for_port

    env = {**os.environ, "VAR_DIR": str(small_disk), "SECRET_KEY": "disk-full-test", "REDIS_URL": redis_url,
           "REFIT_EVERY_N_LABELS": "0", "DJANGO_SETTINGS_MODULE": "feedback_app.settings"}
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT)
    setup = (
        "from feedback_app.models import Role\n"
        "from feedback_app.services.accounts import user_create\n"
        "from feedback_app.services.imports import prompts_import\n"
        "user, _, token = user_create(username='rater', role=Role.RATER)\n"
        "lines = [__import__('json').dumps({'prompt': f'Where is order {i}?', 'responses': [f'It ships today ({i}).', f'No idea ({i}).']}) for i in range(400)]\n"
        "prompts_import(data='\\n'.join(lines).encode(), filename='p.jsonl')\n"
        "print(token)\n"
    )
    token = subprocess.run([*manage, "shell", "-c", setup], env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout.split()[-1]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "feedback_app.asgi:application"],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    acknowledged: list[int] = []
    statuses: list[int] = []
    try:
        wait_for_port("127.0.0.1", port, timeout=60, process=server)
        base = f"http://127.0.0.1:{port}"

        def label_one() -> int:
            status, body = _call(base, "/api/v1/comparisons/next/", token)
            if status != 200:
                return status
            status, _ = _call(base, f"/api/v1/comparisons/{body['id']}/label/", token, {"choice": "left", "strength": 2})
            if status == 201:
                acknowledged.append(body["id"])
            return status

        assert [label_one() for _ in range(5)] == [201] * 5
        filler = _fill(small_disk)
        while len(statuses) < 200 and statuses.count(503) < 5:
            statuses.append(label_one())
        assert set(statuses) <= {201, 503}, statuses  # never a 500
        assert 503 in statuses
        status, body = _call(base, "/api/v1/comparisons/next/", token)
        if status == 503:
            assert body == {"detail": DISK_FULL_MESSAGE}
        for crumb in [filler, *small_disk.glob("crumb-*")]:
            crumb.unlink()
        assert [label_one() for _ in range(5)] == [201] * 5  # the same server carries on
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert "Traceback" not in log, log[-3000:]
    stored = subprocess.run([*manage, "shell", "-c", "from feedback_app.models import PreferenceLabel; import json; "
                             "print(json.dumps(sorted(PreferenceLabel.objects.values_list('comparison_id', flat=True))))"],
                            env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout.split("\n")[-2]
    assert json.loads(stored) == sorted(acknowledged)  # every acknowledged label, once, and nothing else
