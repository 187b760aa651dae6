import os
import time

import pytest

from feedback_app.devsupport import free_port
from feedback_app.runtime import runtime_write
from feedback_app.selectors.health import studio_readiness
from feedback_app.services.health import queue_heartbeat_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def healthy(settings, redis_url, tmp_path):
    settings.REDIS_URL = redis_url
    settings.VAR_DIR = tmp_path
    settings.HEALTH_QUEUES = ["default", "score", "gpu"]
    settings.HEALTH_HEARTBEAT_MAX_AGE = 60
    queue_heartbeat_record(queues=["default", "score", "gpu"])
    return settings


def test_ready_when_database_redis_and_every_queue_answer(healthy):
    """Fresh heartbeats on every queue, a database and Redis that answer: ready."""
    report = studio_readiness()
    assert report["ok"] and report["database"] == {"ok": True} and report["redis"] == {"ok": True}
    assert set(report["queues"]) == {"default", "score", "gpu"} and all(q["ok"] and q["last_heartbeat"] for q in report["queues"].values())
    assert "processes" not in report  # no supervisor wrote any


def test_a_stale_or_missing_queue_heartbeat_makes_it_unready(healthy):
    """A queue whose last heartbeat is older than HEALTH_HEARTBEAT_MAX_AGE, or that never had one, is not ok."""
    queue_heartbeat_record(queues=["gpu"], at=time.time() - 600)
    healthy.HEALTH_QUEUES = ["default", "score", "gpu", "extra"]
    report = studio_readiness()
    assert not report["ok"]
    assert report["queues"]["gpu"]["ok"] is False and report["queues"]["gpu"]["last_heartbeat"]
    assert report["queues"]["extra"] == {"last_heartbeat": None, "ok": False}
    assert report["queues"]["default"]["ok"] and report["queues"]["score"]["ok"]


def test_redis_down_is_reported_not_raised(healthy):
    """Without Redis, readiness says so (and that no queue is known to be served)."""
    healthy.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    report = studio_readiness()
    assert not report["ok"] and report["redis"] == {"ok": False} and not any(q["ok"] for q in report["queues"].values())


def test_supervised_processes_are_reported_without_pids(healthy, tmp_path):
    """What serve recorded about its children shows, less the pids."""
    runtime_write(tmp_path, {"pid": os.getpid(), "processes": {"worker gpu": {"pid": 77, "running": True, "restarts": 2, "last_exit": -9,
                                                                    "last_exit_at": "2026-01-01T00:00:00+00:00", "last_restart_at": "x"}}})
    processes = studio_readiness()["processes"]
    assert processes == {"worker gpu": {"running": True, "restarts": 2, "last_exit": -9, "last_exit_at": "2026-01-01T00:00:00+00:00",
                                        "last_restart_at": "x"}}
