"""What /readyz and the dashboard say about the studio's health: database, Redis, queues, processes."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from django.conf import settings
from django.db import DatabaseError, connection

from feedback_app.runtime import runtime_live

logger = logging.getLogger(__name__)
HEARTBEAT_KEY = "studio:heartbeat:{queue}"  # a Redis key per queue; services.health writes it
PROCESS_FIELDS = ("running", "restarts", "last_exit", "last_exit_at", "last_restart_at")


def database_ok() -> bool:
    """Return whether the database answers a query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError as exc:
        logger.warning("database not ready: %s", exc)
        return False


def queue_heartbeats(queues: list[str]) -> tuple[bool, dict[str, float | None]]:
    """Return whether Redis answers, and each queue's last worker heartbeat (Unix time, None if none)."""
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
        values = client.mget([HEARTBEAT_KEY.format(queue=queue) for queue in queues]) if queues else []
    except (redis.RedisError, OSError) as exc:
        logger.warning("redis not ready: %s", exc)
        return False, {queue: None for queue in queues}
    return True, {queue: float(value) if value is not None else None for queue, value in zip(queues, values)}


def studio_processes() -> dict[str, dict] | None:
    """Return what the supervisor (`serve`) recorded about its children, or None when it runs none."""
    processes = (runtime_live(settings.VAR_DIR) or {}).get("processes")
    if not isinstance(processes, dict):
        return None
    # No pids or command lines: the endpoints that show this are unauthenticated.
    return {name: {key: state.get(key) for key in PROCESS_FIELDS} for name, state in processes.items() if isinstance(state, dict)}


def studio_readiness() -> dict:
    """Return the readiness report: ``ok`` when the database, Redis and a worker of every queue answer."""
    queues = list(settings.HEALTH_QUEUES)
    redis_ok, beats = queue_heartbeats(queues)
    now = time.time()
    report_queues = {
        queue: {
            "last_heartbeat": datetime.fromtimestamp(beat, timezone.utc).isoformat(timespec="seconds") if beat is not None else None,
            "ok": beat is not None and now - beat <= settings.HEALTH_HEARTBEAT_MAX_AGE,
        }
        for queue, beat in beats.items()
    }
    database = database_ok()
    report = {"ok": database and redis_ok and all(q["ok"] for q in report_queues.values()), "database": {"ok": database},
              "redis": {"ok": redis_ok}, "queues": report_queues}
    processes = studio_processes()
    if processes is not None:
        report["processes"] = processes
    return report
