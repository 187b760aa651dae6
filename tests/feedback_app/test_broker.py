"""Asking a real Redis broker whether a task's message still waits."""

import json


from feedback_app.broker import task_message_waiting, task_queue, training_run_queue

RUN_TASK = "feedback_app.tasks.training_run_execute"


def test_a_waiting_message_is_found_by_task_and_arguments(broker_client):
    broker_client.send_task(RUN_TASK, args=[5], queue="gpu")
    broker_client.send_task(RUN_TASK, args=[7], queue="gpu", priority=6)
    assert task_message_waiting(task=RUN_TASK, args=(5,)) is True
    assert task_message_waiting(task=RUN_TASK, args=(7,)) is True  # in the list of its priority step
    assert task_message_waiting(task=RUN_TASK, args=(6,)) is False
    assert task_message_waiting(task="feedback_app.tasks.comparisons_rm_score") is False


def test_policy_runs_have_their_own_queue_and_reward_runs_keep_the_gpu_queue():
    assert training_run_queue("policy_dpo") == "policy"
    assert training_run_queue("reward_fast") == training_run_queue("reward_full") == "gpu"


def test_a_message_is_looked_for_in_the_queue_asked_about(broker_client):
    """A policy run's message waits in the "policy" list: found there, not in the task's route ("gpu")."""
    broker_client.send_task(RUN_TASK, args=[8], queue="policy")
    assert task_message_waiting(task=RUN_TASK, args=(8,), queue="policy") is True
    assert task_message_waiting(task=RUN_TASK, args=(8,)) is False


def test_a_message_a_worker_holds_unacknowledged_counts_as_waiting(broker_client):
    """A worker took it and may die: the message returns to the queue after the visibility timeout."""
    broker_client.send_task(RUN_TASK, args=[5], queue="gpu")
    redis = broker_client.connection_for_write().default_channel.client
    message = json.loads(redis.rpop("gpu"))
    assert task_message_waiting(task=RUN_TASK, args=(5,)) is False
    redis.hset("unacked", "tag-1", json.dumps([message, "", "gpu"]))
    assert task_message_waiting(task=RUN_TASK, args=(5,)) is True


def test_without_an_answering_redis_the_broker_cannot_tell(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    assert task_message_waiting(task=RUN_TASK, args=(5,)) is None
    settings.CELERY_BROKER_URL = "amqp://guest@127.0.0.1//"
    assert task_message_waiting(task=RUN_TASK, args=(5,)) is None
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert task_message_waiting(task=RUN_TASK, args=(5,)) is None


def test_tasks_are_looked_for_in_their_routed_queue():
    assert task_queue(RUN_TASK) == "gpu"
    assert task_queue("feedback_app.tasks.comparisons_rm_score") == "score"
    assert task_queue("feedback_app.tasks.comparisons_supply") == "default"
