"""Celery tasks: thin calls, the score chain, beat entries, the shared model holder."""


import pytest
from django.conf import settings
from django.utils import timezone

from feedback_app import broker, tasks, training_bridge
from feedback_app.models import Comparison, PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.scoring import SCORE_AFTER


@pytest.fixture
def scored_backlog(monkeypatch, make_comparisons, rater):
    """Five labelled comparisons, an active reward model (a test double), chunks of two."""
    monkeypatch.setattr(training_bridge, "comparisons_prob_a_wins", lambda *, version_name, version_path, items, models: [0.75] * len(items))
    monkeypatch.setattr(tasks, "RM_SCORE_CHUNK", 2)
    for c in make_comparisons(5):
        PreferenceLabel.objects.create(comparison=c, rater=rater, winner="a", strength=2)
        Comparison.objects.filter(pk=c.pk).update(label_count=1)
    PreferenceLabel.objects.update(created_at=timezone.now() - 2 * SCORE_AFTER)  # past the walk's wait for late commits
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
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: sent.append(args[0]))
    run = TrainingRun.objects.create(kind="reward_fast")  # queued, its message never sent
    assert tasks.training_runs_reap.delay().get()["resent"] == 1
    assert sent == [run.pk]


def test_the_model_tasks_of_a_process_share_one_holder(monkeypatch):
    """Every ModelTask of a process hands out the same ModelHolder, made once on first use."""
    from feedback_app.training_bridge import ModelHolder

    monkeypatch.setattr(tasks.ModelTask, "_holder", None)
    model_tasks = [tasks.training_run_execute, tasks.comparisons_supply, tasks.reward_score, tasks.comparisons_rm_score, tasks.policy_generate]
    holders = {id(task.models) for task in model_tasks}
    assert len(holders) == 1 and isinstance(tasks.training_run_execute.models, ModelHolder)
    assert tasks.ModelTask._holder is tasks.comparisons_supply.models


@pytest.mark.django_db
def test_sample_replies_run_on_the_score_queue_and_keep_their_result(monkeypatch):
    """policy_generate answers a waiting request: routed to "score" beside API scoring, its result kept; a refusal comes back by code."""
    from feedback_app.models import PolicyVersion

    assert settings.CELERY_TASK_ROUTES["feedback_app.tasks.policy_generate"] == {"queue": "score"}
    assert tasks.policy_generate.ignore_result is False
    monkeypatch.setattr(training_bridge, "replies_generate", lambda *, prompts, models, **_: [f"re: {text}" for text, _ in prompts])
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="active")
    prompts = [{"prompt": "Hi", "context": []}]
    assert tasks.policy_generate.delay("policy-1", prompts, 0, 16, 0.7).get() == {"policy": "policy-1", "mode": "sample", "reward_model": None, "replies": ["re: Hi"]}
    assert tasks.policy_generate.delay("nope", prompts, 0, 16, 0.7).get() == {"error": "no policy version named 'nope'", "code": "not_found"}


@pytest.mark.django_db
def test_a_worker_that_starts_closes_the_counts_at_once(make_comparisons, rater):
    """A worker's start asks for the closes (eager here, as the tests run tasks): labels of before a stop are counted from
    their hours' rows at once, not read live until beat's first tick."""
    from datetime import timedelta

    from celery.signals import worker_ready
    from django.utils import timezone

    from feedback_app.models import QualityTallied
    from feedback_app.selectors.label_tally import label_hours_closed_through

    (comparison,) = make_comparisons(1)
    label = PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner="a", strength=2)
    earlier = timezone.now() - timedelta(minutes=30)
    PreferenceLabel.objects.filter(pk=label.pk).update(created_at=earlier)
    Comparison.objects.filter(pk=comparison.pk).update(label_count=1, status="complete", completed_at=earlier)
    assert label_hours_closed_through() is None and not QualityTallied.objects.exists()
    worker_ready.send(sender=type("Worker", (), {"hostname": "default@test"})())
    assert label_hours_closed_through() > earlier
    assert QualityTallied.objects.get().through > earlier


@pytest.mark.django_db(transaction=True)
def test_a_worker_asked_to_stop_fails_the_runs_it_trains_so_each_ends_at_its_next_step():
    """Celery's worker_shutting_down, in the worker's main process: its runs are failed with the reason, on a thread of their
    own, and a run's monitor (in the pool process training it) answers "stop" at its next check."""
    from feedback_app.services.training_runs import RunMonitor

    mine = TrainingRun.objects.create(kind="policy_dpo", status="running", worker="policy@studio", heartbeat_at=timezone.now())
    other = TrainingRun.objects.create(kind="reward_fast", status="running", worker="gpu@studio", heartbeat_at=timezone.now())
    monitor = RunMonitor(mine.pk, interval=0)
    assert not monitor.should_stop()
    tasks._stop_runs_at_shutdown(sender="policy@studio", sig="SIGTERM", how="Warm", exitcode=0).join(timeout=30)
    mine.refresh_from_db(), other.refresh_from_db()
    assert mine.status == "failed" and mine.error == "the studio stopped its worker policy@studio while this run was training"
    assert other.status == "running"
    assert monitor.should_stop()
