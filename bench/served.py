"""The whole studio as ``make run`` starts it (``manage.py serve``: embedded Redis, daphne, every Celery
worker, beat), in a scratch VAR_DIR on 127.0.0.1, and a client of its HTTP API; for benches that
drive the real loop from outside.

    with ServedStudio("loop-", env={"REFIT_EVERY_N_LABELS": "25"}) as studio:
        token = studio.user("rater0", "rater")      # Django is set up and migrated in this process
        studio.start()                              # then the studio runs, until the block ends
        api = Api(studio.base, token)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]


class ServedStudio:
    def __init__(self, prefix: str, *, env: dict[str, str] | None = None, keep: bool = False, serve_args: list[str] | None = None) -> None:
        self.prefix, self.extra_env, self.keep, self.serve_args = prefix, env or {}, keep, serve_args or []
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServedStudio:
        sys.path.insert(0, str(ROOT))
        # A bench stopped with SIGTERM (kill, a timeout) unwinds like Ctrl-C, so the studio it started stops with it.
        signal.signal(signal.SIGTERM, _sigterm_exits)
        from feedback_app.devsupport import free_port

        self.scratch = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.var = self.scratch / "var"
        self.var.mkdir()
        (self.var / "secret_key").write_text("scratch-only-" + os.urandom(8).hex())
        self.port, redis_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "VAR_DIR": str(self.var), "MODEL_STORE": str(self.scratch / "models"),
                    "EMBEDDED_REDIS_PORT": str(redis_port), "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "feedback_app.settings",
                    "CELERY_TASK_ALWAYS_EAGER": "0", **self.extra_env}
        for name in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(name, None)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            import django

            django.setup()
            from django.conf import settings
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}  # nothing listens yet
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def user(self, username: str, role: str) -> str:
        """Create a user in ``role`` ("rater", "researcher", "admin"); return its API token."""
        from feedback_app.models import Role
        from feedback_app.services.accounts import user_create

        return user_create(username=username, role=Role(role))[2]

    def start(self, timeout: float = 180) -> None:
        """Start ``manage.py serve``; return once the web server answers."""
        from django.db import connections

        connections.close_all()  # the studio's processes own the database from here
        self.log_path = self.scratch / "serve.log"
        self.process = serve_start(port=self.port, env=self.env, log_path=self.log_path, args=self.serve_args, timeout=timeout)

    def tracebacks(self) -> list[str]:
        """Return the lines of the studio's logs that start a Python traceback."""
        found = []
        for log in [self.scratch / "serve.log", *sorted((self.var / "logs").glob("*.log"))]:
            if log.exists():
                found += [f"{log.name}: {line.strip()}" for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]
        return found

    def __exit__(self, *exc_info) -> None:
        serve_stop(self.process)
        if self.keep:
            print(f"scratch folder kept: {self.scratch}")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _sigterm_exits(signum, frame) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def serve_start(*, port: int, env: dict[str, str], log_path: Path, args: list[str] = (), timeout: float = 180) -> subprocess.Popen:
    """Start ``manage.py serve`` on ``port`` with ``env``, its output in ``log_path``; return it once its login page answers."""
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), *args], cwd=ROOT, env=env,
                               stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/login/", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}; see {log_path}")
        time.sleep(1)
    raise SystemExit(f"the studio did not answer within {timeout:g} s; see {log_path}")


def serve_stop(process: subprocess.Popen | None) -> float:
    """Stop a ``serve`` the way Ctrl-C does (SIGKILL to its group after 120 s); return the seconds it took."""
    started = time.monotonic()
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return time.monotonic() - started


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        super().__init__(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        self.status = response.status_code


class Api:
    """One user's session with the studio's API; waits out throttling (429) and retries a busy worker (503) a few times."""

    def __init__(self, base: str, token: str, *, timeout: float = 1800) -> None:
        self.base, self.timeout = base, timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def call(self, method: str, path: str, *, json: Any = None, ok: tuple[int, ...] = (200, 201), retries: int = 3) -> requests.Response:
        for attempt in range(retries + 1):
            response = self.session.request(method, f"{self.base}/api/v1/{path}", json=json, timeout=self.timeout)
            if response.status_code in ok:
                return response
            if response.status_code == 429 or (response.status_code == 503 and attempt < retries):
                time.sleep(float(response.headers.get("Retry-After") or 2))
                continue
            break
        raise ApiError(method, path, response)

    def get(self, path: str, **kwargs) -> Any:
        return self.call("GET", path, **kwargs).json()

    def post(self, path: str, body: Any, **kwargs) -> Any:
        response = self.call("POST", path, json=body, **kwargs)
        return response.json() if response.content else None
