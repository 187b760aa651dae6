"""A gpu worker killed with SIGKILL in the middle of a real fit, against a real Redis: the next worker of that
name fails the run, the half-written checkpoint goes, no label is lost and the active model stays."""

import os
import signal
import subprocess
import sys
import time

import pytest
from celery import Celery
from django.conf import settings

from feedback_app.models import PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.training import training_run_execute
from feedback_app.services.training_runs import training_run_request
from tests.conftest import child_database_url


REFUSED = "is not queued (missing, or claimed before): nothing to do"  # the worker's log line for a message whose run is not queued


def start_worker(redis_url: str, name: str, log) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": child_database_url(), "REDIS_URL": redis_url, "MODEL_STORE": str(settings.MODEL_STORE),
           "CELERY_VISIBILITY_TIMEOUT": "5", "DB_POOL": "0", "CELERY_TASK_ALWAYS_EAGER": "0", "LOG_LEVEL": "INFO"}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "feedback_app", "worker", "-Q", "gpu", "-n", name, "--pool", "solo", "--loglevel", "INFO"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def wait_until(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.models
@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_mid_training_loses_nothing(redis_url, synthetic_preferences, tmp_path):
    synthetic_preferences(160)
    first = training_run_request(kind="reward_fast", trigger="cli")
    training_run_execute(run_id=first.pk, worker="in-test")
    active = RewardModelVersion.objects.get(status="active")
    labels_before = PreferenceLabel.objects.count()

    run = TrainingRun.objects.create(kind="reward_full", trigger="cli")
    client = Celery(broker=redis_url, set_as_current=False)
    client.send_task("feedback_app.tasks.training_run_execute", args=[run.pk], queue="gpu")
    log = open(tmp_path / "worker.log", "wb")
    worker = start_worker(redis_url, "gpu@killtest", log)
    try:
        wait_until(lambda: TrainingRun.objects.filter(pk=run.pk, status="running", progress__phase="fine_tune").exists(),
                   timeout=180, what="the full-tier run to start fine-tuning")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        run.refresh_from_db()
        assert run.status == "running"  # nobody could say otherwise yet

        worker = start_worker(redis_url, "gpu@killtest", log)  # the same name, as after a restart
        wait_until(lambda: TrainingRun.objects.filter(pk=run.pk, status="failed").exists(), timeout=120,
                   what="the restarted worker to fail the orphaned run")
        run.refresh_from_db()
        assert "stopped while this run was training" in run.error
        # The unacknowledged message comes back after the visibility timeout (5 s; the worker looks for such messages every
        # 10 s, later on a busy machine); the claim refuses it.
        wait_until(lambda: REFUSED in (tmp_path / "worker.log").read_text(errors="replace"), timeout=90,
                   what="the redelivered message to be refused")
        run.refresh_from_db()
        assert run.status == "failed"
        assert list(RewardModelVersion.objects.values_list("name", "status")) == [(active.name, "active")]
        assert PreferenceLabel.objects.count() == labels_before
        assert not [p for p in (settings.MODEL_STORE / "reward").iterdir() if p.name.startswith(".tmp-")]
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        log.close()
