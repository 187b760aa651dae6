import os
import time

import pytest
from django.test import Client

from feedback_app.models import Role
from feedback_app.runtime import runtime_write
from feedback_app.services.health import queue_heartbeat_record


def test_healthz_answers_without_the_database(client):
    """Liveness needs no database: this test has no database access at all."""
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"
    assert "no-cache" in response["Cache-Control"]


@pytest.fixture
def beating(settings, redis_url, tmp_path):
    settings.REDIS_URL = redis_url
    settings.VAR_DIR = tmp_path
    settings.HEALTH_QUEUES = ["default", "score", "gpu"]
    queue_heartbeat_record(queues=["default", "score", "gpu"])
    return settings


@pytest.mark.django_db
def test_readyz_is_200_when_all_is_well_and_503_when_a_queue_is_silent(client, beating):
    """Unauthenticated; 503 names the queue whose worker fell silent."""
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["ok"] is True
    queue_heartbeat_record(queues=["gpu"], at=time.time() - 3600)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["ok"] is False
    assert body["queues"]["gpu"]["ok"] is False and body["queues"]["default"]["ok"] is True
    assert set(body) == {"ok", "database", "redis", "queues"}
    assert "redis://" not in response.content.decode()  # no addresses or credentials


@pytest.mark.django_db
def test_dashboard_shows_queues_and_restarted_processes(make_user, beating, tmp_path):
    """Staff see each queue's worker and each supervised process with its restarts; raters do not."""
    runtime_write(tmp_path, {"pid": os.getpid(), "processes": {"worker gpu": {"pid": 5, "running": True, "restarts": 2, "last_exit": -9,
                                                          "last_exit_at": "2026-12-02T01:00:00+00:00", "last_restart_at": None}}})
    queue_heartbeat_record(queues=["score"], at=time.time() - 3600)
    staff = Client()
    staff.force_login(make_user(role=Role.RESEARCHER))
    for url in ("/dashboard/processes/", "/dashboard/"):
        page = staff.get(url).content.decode()
        assert "worker gpu: restarting" not in page and "worker gpu: running · restarted 2× (last exit -9 at 2026-12-02T01:00:00+00:00)" in page
        assert "worker default: alive" in page and "worker score: silent since" in page
    rater = Client()
    rater.force_login(make_user(role=Role.RATER))
    assert rater.get("/dashboard/processes/").status_code == 403
