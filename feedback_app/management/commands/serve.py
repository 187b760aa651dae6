"""Run the whole studio on one machine: Redis (embedded unless REDIS_URL), web, workers, beat."""

from __future__ import annotations

import os
import signal
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from feedback_app.devsupport import redis_server_command, static_root_make
from feedback_app.runtime import StudioAlreadyRunning, runtime_remove, runtime_write, studio_id, studio_lock
from feedback_app.supervisor import Backoff, ChildFailedToStart, ChildSpec, Supervisor

# Daphne cancels its open websocket consumers at SIGTERM and waits this long for them, well inside
# the grace period, so a shutdown with connected clients ends without killing the web server.
DAPHNE_APPLICATION_CLOSE_TIMEOUT = 5


def port_in_use(host: str, port: int) -> bool:
    """Return whether something already listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def studio_children(*, host: str, port: int, redis_port: int | None, redis_url: str, var_dir: Path, workers: bool,
                    default_concurrency: int) -> list[ChildSpec]:
    """Return the studio's processes in start order: Redis (when embedded), workers, beat, web."""
    python = sys.executable
    # Every child talks to this studio's Redis and VAR_DIR, whatever the shell exported.
    common = {"REDIS_URL": redis_url, "VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"}
    children = []
    if redis_port is not None:
        data_dir = var_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        children.append(ChildSpec("redis", redis_server_command(port=redis_port, data_dir=data_dir), listens=("127.0.0.1", redis_port),
                                  listen_timeout=20, stop_last=True))
    if workers:
        # Celery's prefork children keep one persistent connection each; no pool there.
        worker_env = {**common, "DB_POOL": "0"}
        shared_cores = {**worker_env, "TORCH_THREADS": os.environ.get("TORCH_THREADS", "1")}
        # Names unique per studio and stable across its restarts: a restarted worker fails the runs
        # its predecessor of the same name left running, and never those of another studio.
        suffix = studio_id(var_dir)
        celery = [python, "-m", "celery", "-A", "feedback_app"]
        queues = (("default", default_concurrency, shared_cores), ("gpu", 1, worker_env), ("policy", 1, policy_worker_env(worker_env)),
                  ("score", 1, shared_cores))
        if settings.AI_FEEDBACK:  # generative judges run here, never in a web process
            queues += (("judge", 1, shared_cores),)
        for queue, concurrency, env in queues:
            children.append(ChildSpec(f"worker {queue}", celery + ["worker", "-Q", queue, "-n", f"{queue}@%h.{suffix}",
                                                                     "--concurrency", str(concurrency), "--loglevel", "INFO",
                                                                     # Nothing here uses worker gossip or mingle, and gossip
                                                                     # logged an error on every reconnect after a Redis restart.
                                                                     "--without-gossip", "--without-mingle"], env))
        children.append(ChildSpec("beat", celery + ["beat", "--schedule", str(var_dir / "celerybeat-schedule"), "--loglevel", "WARNING"], worker_env))
    children.append(ChildSpec("web", [python, "-m", "daphne", "-b", host, "-p", str(port), "--proxy-headers",
                                      "--application-close-timeout", str(DAPHNE_APPLICATION_CLOSE_TIMEOUT), "feedback_app.asgi:application"],
                              common, listens=(host, port)))
    return children


def policy_worker_env(env: dict[str, str]) -> dict[str, str]:
    """Return ``env`` for the policy worker: one torch thread unless TORCH_THREADS says otherwise, at POLICY_WORKER_NICE.

    Policy updates (DPO) have their own worker, so a long DPO run never holds up a reward refit in
    a queue; it shares the cores, so it runs at a lower priority and pauses while a refit runs.
    """
    return {**env, "TORCH_THREADS": env.get("TORCH_THREADS") or os.environ.get("TORCH_THREADS") or "1",
            "WORKER_NICE": str(settings.POLICY_WORKER_NICE)}


class Command(BaseCommand):
    help = ("Start the web server (ASGI), the Celery workers and beat, and an embedded Redis when REDIS_URL is unset; "
            "restart any of them that crashes. Ctrl-C stops them all.")

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-workers", action="store_true", help="Run only Redis and the web server.")
        parser.add_argument("--default-concurrency", type=int, default=2, help="Processes of the worker on the 'default' queue.")

    def handle(self, *args, host: str, port: int, no_workers: bool, default_concurrency: int, **options):
        var_dir = settings.VAR_DIR
        try:
            lock = studio_lock(var_dir)
        except StudioAlreadyRunning as exc:
            raise CommandError(str(exc)) from None
        try:
            self._serve(var_dir=var_dir, host=host, port=port, workers=not no_workers, default_concurrency=default_concurrency)
        finally:
            runtime_remove(var_dir)
            os.close(lock)

    def _serve(self, *, var_dir: Path, host: str, port: int, workers: bool, default_concurrency: int) -> None:
        # Holding the lock, any runtime file left here is a dead studio's: the URL comes from the environment.
        redis_port = settings.EMBEDDED_REDIS_PORT if settings.REDIS_EMBEDDED else None
        redis_url = f"redis://127.0.0.1:{redis_port}/0" if redis_port else settings.REDIS_URL
        busy = [(h, p, name) for h, p, name in ((host, port, "PORT"), ("127.0.0.1", redis_port, "EMBEDDED_REDIS_PORT")) if p and port_in_use(h, p)]
        if busy:
            raise CommandError("; ".join(f"{h}:{p} is in use already (another studio?); choose another with {name}" for h, p, name in busy))
        runtime = {"pid": os.getpid(), "host": host, "port": port, "redis_url": redis_url, "studio_id": studio_id(var_dir),
                   "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        runtime_write(var_dir, runtime)
        static_root_make()
        supervisor = Supervisor(
            studio_children(host=host, port=port, redis_port=redis_port, redis_url=redis_url, var_dir=var_dir, workers=workers,
                            default_concurrency=default_concurrency),
            log_dir=var_dir / "logs", log_max_bytes=settings.LOG_MAX_BYTES, log_backups=settings.LOG_BACKUPS,
            grace=settings.SERVE_GRACE_SECONDS, backoff=Backoff(), console=self.stdout._out,
            on_change=lambda processes: runtime_write(var_dir, {**runtime, "processes": processes}),
        )
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            try:
                supervisor.start()
            except ChildFailedToStart as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(self.style.SUCCESS(f"Feedback studio is running on http://{host}:{port}/  (Ctrl-C stops everything)"))
            self.stdout.write(f"Logs of every process in {var_dir / 'logs'}")
            if redis_port:
                self.stdout.write(f"Embedded Redis on 127.0.0.1:{redis_port} (data in {var_dir / 'redis'})")
            supervisor.run(lambda: stopping)
        finally:
            supervisor.stop()
