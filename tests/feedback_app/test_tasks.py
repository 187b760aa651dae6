"""Celery tasks against a real Redis and a real worker process."""

import os
import signal
import subprocess
import sys
import time

import pytest
from celery import Celery
from django.conf import settings

from feedback_app import broker, tasks, training_bridge
from feedback_app.models import Comparison, PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.training import training_run_execute
from feedback_app.services.training_runs import training_run_request
from tests.conftest import child_database_url


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
        # The unacknowledged message comes back after the visibility timeout (5 s); the claim refuses it.
        time.sleep(12)
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
    output = (tmp_path / "worker.log").read_text(errors="replace")
    assert "is not queued (missing, or claimed before): nothing to do" in output, output[-3000:]


@pytest.fixture
def scored_backlog(monkeypatch, make_comparisons, rater):
    """Five labelled comparisons, an active reward model (a test double), chunks of two."""
    monkeypatch.setattr(training_bridge, "comparisons_prob_a_wins", lambda *, version_name, version_path, items, models: [0.75] * len(items))
    monkeypatch.setattr(tasks, "RM_SCORE_CHUNK", 2)
    for c in make_comparisons(5):
        PreferenceLabel.objects.create(comparison=c, rater=rater, winner="a", strength=2)
        Comparison.objects.filter(pk=c.pk).update(label_count=1)
    return RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001", status="active")


@pytest.mark.django_db
def test_a_lost_score_link_is_restarted_by_beat_where_it_stopped(scored_backlog, monkeypatch):
    links = []
    monkeypatch.setattr(tasks.comparisons_rm_score, "delay", lambda: links.append("lost"))  # the broker drops it
    assert tasks.comparisons_rm_score() == 2 and links == ["lost"]
    beat = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert beat["feedback_app.tasks.comparisons_rm_score"] <= 120
    assert tasks.comparisons_rm_score() == 2  # the beat's run: the next chunk, not the first again
    assert tasks.comparisons_rm_score() == 1
    assert Comparison.objects.filter(rm_prob_version=scored_backlog).count() == 5


@pytest.mark.django_db
def test_a_score_link_is_not_queued_twice(scored_backlog, monkeypatch):
    """When a link waits in the queue already (the beat's, say), the running chain ends: chains merge, never pile up."""
    links = []
    monkeypatch.setattr(tasks.comparisons_rm_score, "delay", lambda: links.append("queued"))
    monkeypatch.setattr(broker, "task_message_waiting", lambda *, task, args=(): task == tasks.comparisons_rm_score.name)
    assert tasks.comparisons_rm_score() == 2 and links == []
    monkeypatch.setattr(broker, "task_message_waiting", lambda *, task, args=(): False)
    assert tasks.comparisons_rm_score() == 2 and links == ["queued"]


def test_every_self_scheduling_loop_has_a_beat_entry():
    """Supply, the reaper (which re-sends runs and refits) and the score chain come back by themselves while beat runs."""
    beat = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert beat["feedback_app.tasks.comparisons_supply"] <= 30
    assert beat["feedback_app.tasks.training_runs_reap"] <= 60
    assert beat["feedback_app.tasks.comparisons_rm_score"] <= 120


@pytest.mark.django_db
def test_the_reap_task_sends_a_lost_run_again(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "delay", lambda run_id: sent.append(run_id))
    run = TrainingRun.objects.create(kind="reward_fast")  # queued, its message never sent
    assert tasks.training_runs_reap.delay().get()["resent"] == 1
    assert sent == [run.pk]


def test_the_model_tasks_of_a_process_share_one_holder(monkeypatch):
    """Every ModelTask of a process hands out the same ModelHolder, made once on first use."""
    from feedback_app.training_bridge import ModelHolder

    monkeypatch.setattr(tasks.ModelTask, "_holder", None)
    model_tasks = [tasks.training_run_execute, tasks.comparisons_supply, tasks.reward_score, tasks.comparisons_rm_score]
    holders = {id(task.models) for task in model_tasks}
    assert len(holders) == 1 and isinstance(tasks.training_run_execute.models, ModelHolder)
    assert tasks.ModelTask._holder is tasks.comparisons_supply.models
