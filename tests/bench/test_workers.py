"""The loop bench's worker and DPO helpers: command lines, the policy worker's environment, a run's state in words, the
wait for workers to serve their queues."""

import threading
import time

import pytest
import redis

from bench._workers import dpo_describe, dpo_env, policy_worker_env, worker_command, workers_wait_ready
from feedback_app.selectors.health import HEARTBEAT_KEY


def test_a_bench_worker_serves_one_queue_in_one_named_process():
    command = worker_command("python", "policy")
    assert command[:5] == ["python", "-m", "celery", "-A", "feedback_app"]
    assert command[command.index("-Q") + 1] == "policy" and command[command.index("-n") + 1] == "policy@bench"
    assert command[command.index("--pool") + 1] == "solo"


def test_the_policy_worker_gets_one_torch_thread_unless_told_otherwise_and_a_lower_priority(monkeypatch, settings):
    """As manage.py serve starts it: it shares the cores with the refits."""
    monkeypatch.delenv("TORCH_THREADS", raising=False)
    settings.POLICY_WORKER_NICE = 10
    assert policy_worker_env({"A": "1"}) == {"A": "1", "TORCH_THREADS": "1", "WORKER_NICE": "10"}
    assert policy_worker_env({"TORCH_THREADS": "2"})["TORCH_THREADS"] == "2"
    assert policy_worker_env({"TORCH_THREADS": ""})["TORCH_THREADS"] == "1"


def test_the_dpo_sizing_also_turns_the_policy_cadence_off():
    assert dpo_env(8, 4) == {"DPO_MAX_STEPS": "8", "DPO_ONLINE_PROMPTS": "4", "POLICY_EVERY_N_LABELS": "0"}


def test_a_run_is_described_by_its_status_phase_and_step():
    assert dpo_describe("running", {"phase": "dpo", "step": 3, "total_steps": 8, "loss": 0.69}) == "running, dpo 3/8"
    assert dpo_describe("running", {"phase": "evaluate", "step": 0, "total_steps": 1}) == "running, evaluate 0/1"
    assert dpo_describe("succeeded", {"phase": "done"}) == "succeeded, done"
    assert dpo_describe("running", {"phase": "dpo", "step": 3, "total_steps": 8, "paused": "waiting"}) == "running, dpo 3/8, paused for a refit"


def test_a_run_without_progress_is_described_by_its_status():
    assert dpo_describe("running", {}) == "running"
    assert dpo_describe("queued", None) == "queued"
    assert dpo_describe("running", {"phase": "online pairs"}) == "running, online pairs"


def test_the_wait_for_workers_ends_once_each_queue_is_stamped_after_it_began_and_names_those_never_served(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.set(HEARTBEAT_KEY.format(queue="gpu"), repr(time.time() - 60))  # a worker of an earlier run: not this one
    client.set(HEARTBEAT_KEY.format(queue="score"), repr(time.time() + 60))  # stamped as the waits go on
    later = threading.Timer(0.5, lambda: client.set(HEARTBEAT_KEY.format(queue="gpu"), repr(time.time())))
    later.start()
    try:
        assert 0.4 <= workers_wait_ready(redis_url, ["score", "gpu"], timeout=30) < 30
    finally:
        later.cancel()
    with pytest.raises(SystemExit, match="no worker served policy within 1 s"):
        workers_wait_ready(redis_url, ["score", "policy"], timeout=1)


def test_what_the_workers_finished_counts_from_the_start_the_newest_reward_versions_labels_and_its_scores(make_comparisons, make_user):
    from datetime import timedelta

    from django.utils import timezone

    from bench._workers import workers_work_done
    from feedback_app.models import Comparison, RewardModelVersion

    started = timezone.now()
    older = RewardModelVersion.objects.create(name="rm-old", path="reward/rm-old", data_range={"n_labels": 5})
    RewardModelVersion.objects.filter(pk=older.pk).update(created_at=started - timedelta(minutes=1))
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", data_range={"n_labels": 40})
    newest = RewardModelVersion.objects.create(name="rm-2", path="reward/rm-2", data_range={"n_labels": 90})
    scored, by_older, _ = make_comparisons(3)
    Comparison.objects.filter(pk=scored.pk).update(rm_prob_version=newest, rm_prob_a_wins=0.7)
    Comparison.objects.filter(pk=by_older.pk).update(rm_prob_version=older, rm_prob_a_wins=0.4)
    from feedback_app.models import PreferenceLabel

    PreferenceLabel.objects.create(comparison=scored, rater=make_user(), winner="a")  # after rm-2's data (it names no last label)
    assert workers_work_done(started) == {"reward_versions": 2, "labels_in_newest_reward_version": 90, "labels_not_learned_at_the_end": 1,
                                          "policy_versions": 0, "comparisons_scored": 1}
