"""The life of a training run: request, claim, succeed, fail, reap, and the monitor that writes progress."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from feedback_app import training_bridge
from feedback_app.models import AuditEntry, TrainingRun
from feedback_app.services.training_runs import (
    RunMonitor,
    RunStopped,
    checkpoints_remove_abandoned,
    training_run_claim,
    training_run_fail,
    training_run_get_or_request,
    training_run_request,
    training_run_succeed,
    training_runs_fail_orphaned,
    training_runs_reap,
)

pytestmark = pytest.mark.django_db


def test_request_enqueues_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    from feedback_app import tasks

    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: sent.append(args[0]))
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_request(kind="reward_fast", trigger="api")
        assert sent == []  # not before the commit
    assert sent == [run.pk] and run.status == TrainingRun.Status.QUEUED
    with pytest.raises(ValueError, match="unknown training run kind"):
        training_run_request(kind="reward_huge", trigger="api")


def test_a_run_is_claimed_once():
    """The first claim marks the run running on its worker; a second claim, or one of a missing run, gets None."""
    run = TrainingRun.objects.create(kind="reward_fast")
    claimed = training_run_claim(run_id=run.pk, worker="gpu@a")
    assert (claimed.pk, claimed.status, claimed.worker) == (run.pk, "running", "gpu@a") and claimed.started_at and claimed.heartbeat_at
    assert training_run_claim(run_id=run.pk, worker="gpu@b") is None
    assert training_run_claim(run_id=999_999, worker="gpu@b") is None
    assert TrainingRun.objects.get(pk=run.pk).worker == "gpu@a"


def test_succeeding_a_run_someone_failed_raises_run_stopped():
    """A run failed while it trained stays failed; its result is refused (and the caller's transaction rolls back)."""
    run = TrainingRun.objects.create(kind="reward_fast", status="running")
    assert training_run_fail(run_id=run.pk, error="cancelled by an admin")
    assert not training_run_fail(run_id=run.pk, error="a second reason")  # only queued or running runs fail
    with pytest.raises(RunStopped):
        training_run_succeed(run=run, metrics={"val_accuracy": 0.9})
    run.refresh_from_db()
    assert (run.status, run.error, run.metrics) == ("failed", "cancelled by an admin", {})


def test_succeeding_a_running_run_records_its_metrics_and_keeps_its_progress():
    run = TrainingRun.objects.create(kind="reward_fast", status="running", progress={"phase": "heads", "step": 2})
    training_run_succeed(run=run, metrics={"val_accuracy": 0.9})
    run.refresh_from_db()
    assert (run.status, run.metrics, run.progress) == ("succeeded", {"val_accuracy": 0.9}, {"phase": "done", "step": 2})
    assert run.finished_at


def test_the_monitor_writes_progress_and_notices_a_cancel():
    """Progress lands on the running row (lists and dicts left out, floats rounded); once the run is failed the monitor says stop."""
    run = TrainingRun.objects.create(kind="reward_fast", status="running")
    monitor = RunMonitor(run.pk, interval=0)
    monitor.progress({"phase": "heads", "step": 1, "total_steps": 3, "loss": 0.123456789, "bins": [1, 2]})
    run.refresh_from_db()
    assert run.progress == {"phase": "heads", "step": 1, "total_steps": 3, "loss": 0.12346} and not monitor.should_stop()
    TrainingRun.objects.filter(pk=run.pk).update(status="failed", error="cancelled by an admin")
    assert monitor.should_stop()
    monitor.progress({"phase": "heads", "step": 2, "total_steps": 3})
    run.refresh_from_db()
    assert run.progress["step"] == 1  # a stopped run's row is not written again


def test_a_progress_write_the_database_refuses_is_skipped_and_the_run_goes_on(monkeypatch, caplog):
    """A refit under rater load on SQLite lost 90 s of work to one heartbeat that waited out the write lock: now it goes on."""
    from django.db import OperationalError
    from django.db.models import QuerySet

    run = TrainingRun.objects.create(kind="reward_fast", status="running")
    monitor = RunMonitor(run.pk, interval=0)
    update = QuerySet.update
    locked = iter([True])

    def busy_once(self, **fields):
        if next(locked, False):
            raise OperationalError("database is locked")
        return update(self, **fields)

    monkeypatch.setattr(QuerySet, "update", busy_once)
    monitor.progress({"phase": "embed", "step": 1, "total_steps": 3})
    assert not monitor.should_stop() and "its progress was not recorded (database is locked)" in caplog.text
    monitor.progress({"phase": "heads", "step": 2, "total_steps": 3})
    run.refresh_from_db()
    assert run.progress == {"phase": "heads", "step": 2, "total_steps": 3} and run.heartbeat_at


def test_the_monitor_pauses_while_a_refit_runs_then_the_run_goes_on():
    """With ``yield_to``, a step boundary waits while it answers True: the heartbeat stays fresh, the progress says why, then comes back."""
    run = TrainingRun.objects.create(kind="policy_dpo", status="running", progress={"phase": "dpo", "step": 3, "total_steps": 8})
    answers = iter([True, True, True, False])
    seen = []

    def sleep(seconds):
        seen.append(TrainingRun.objects.get(pk=run.pk).progress)

    monitor = RunMonitor(run.pk, interval=0, yield_to=lambda: next(answers), sleep=sleep)
    assert not monitor.should_stop()
    assert seen and all(p == {"phase": "dpo", "step": 3, "total_steps": 8, "paused": "waiting for a reward refit to finish"} for p in seen)
    run.refresh_from_db()
    assert run.progress == {"phase": "dpo", "step": 3, "total_steps": 8} and run.heartbeat_at
    assert monitor.pauses == 1 and len(seen) == 3


def test_a_run_cancelled_during_its_pause_stops():
    run = TrainingRun.objects.create(kind="policy_dpo", status="running", progress={"phase": "reference"})

    def sleep(seconds):
        TrainingRun.objects.filter(pk=run.pk).update(status="failed", error="cancelled by an admin")

    monitor = RunMonitor(run.pk, interval=0, yield_to=lambda: True, sleep=sleep)
    assert monitor.should_stop()
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "cancelled by an admin")


def test_a_pause_lasts_at_most_yield_max_seconds():
    """A refit that never ends does not starve the run: after ``yield_max`` it takes its next step (and may pause again)."""
    run = TrainingRun.objects.create(kind="policy_dpo", status="running")
    monitor = RunMonitor(run.pk, interval=0, yield_to=lambda: True, yield_max=0.2, sleep=lambda s: None)
    assert not monitor.should_stop()
    assert 0.2 <= monitor.paused_seconds < 5 and monitor.pauses == 1


@pytest.mark.parametrize(("kind", "yields"), [("policy_dpo", True), ("reward_fast", False), ("reward_full", False)])
def test_policy_runs_yield_to_running_refits_and_reward_runs_do_not(monkeypatch, settings, kind, yields):
    """training_run_execute gives a DPO run a monitor that pauses while a reward refit runs (POLICY_YIELD_TO_REFITS); a refit never pauses."""
    from feedback_app.services import training

    settings.POLICY_YIELD_TO_REFITS = True
    monitors = []
    monkeypatch.setattr(training, "policy_update_run", lambda *, run, monitor, models: monitors.append(monitor))
    monkeypatch.setattr(training, "reward_refit_run", lambda *, run, monitor, models: monitors.append(monitor))
    run = TrainingRun.objects.create(kind=kind, status="queued")
    training.training_run_execute(run_id=run.pk, models=object())
    assert (monitors[0].yield_to is not None) == yields
    settings.POLICY_YIELD_TO_REFITS = False
    run = TrainingRun.objects.create(kind=kind, status="queued")
    training.training_run_execute(run_id=run.pk, models=object())
    assert monitors[1].yield_to is None


def test_orphaned_and_stale_runs_are_failed():
    now = timezone.now()
    mine = TrainingRun.objects.create(kind="reward_fast", status="running", worker="gpu@a", heartbeat_at=now)
    other = TrainingRun.objects.create(kind="reward_fast", status="running", worker="gpu@b", heartbeat_at=now)
    stale = TrainingRun.objects.create(kind="reward_full", status="running", worker="gpu@c", heartbeat_at=now - timedelta(hours=1))
    assert training_runs_fail_orphaned(worker="gpu@a") == 1
    assert training_runs_reap(now=now) == 1
    states = {r.pk: (r.status, r.error) for r in TrainingRun.objects.all()}
    assert states[mine.pk][0] == "failed" and "gpu@a stopped" in states[mine.pk][1]
    assert states[other.pk][0] == "running"
    assert states[stale.pk][0] == "failed" and "no heartbeat" in states[stale.pk][1]


def test_only_the_half_written_checkpoints_of_runs_no_longer_running_are_removed(settings):
    """A running run's write is left alone under its name or the numbered one it took beside an older checkpoint."""
    now = timezone.now()
    running = TrainingRun.objects.create(kind="reward_fast", status="running", worker="w1", heartbeat_at=now)
    ended = TrainingRun.objects.create(kind="reward_fast", status="failed", worker="w1", heartbeat_at=now)
    folder = settings.MODEL_STORE / "reward"
    folder.mkdir(parents=True)
    names = {f"rm-{running.pk:05d}": True, f"rm-{running.pk:05d}-2": True, f"rm-{ended.pk:05d}": False, f"rm-{ended.pk:05d}-2": False}
    for name in names:
        (folder / f".tmp-{name}-1a2b3c4d").mkdir()
    assert checkpoints_remove_abandoned() == 2
    assert sorted(name for name, _ in training_bridge.checkpoint_partials()) == sorted(name for name, kept in names.items() if kept)


def test_one_queued_run_per_kind(admin_user):
    """A second request for a kind already queued returns the queued run; another kind, or after the claim, queues anew."""
    first, created = training_run_get_or_request(kind="reward_fast", trigger="api", user=admin_user)
    again, created_again = training_run_get_or_request(kind="reward_fast", trigger="cli")
    assert created and not created_again and again.pk == first.pk
    assert training_run_request(kind="reward_fast", trigger="manual").pk == first.pk
    other, other_created = training_run_get_or_request(kind="reward_full", trigger="api")
    assert other_created and other.pk != first.pk
    TrainingRun.objects.filter(pk=first.pk).update(status="running")  # a worker claimed it
    later, later_created = training_run_get_or_request(kind="reward_fast", trigger="api")
    assert later_created and later.pk != first.pk
    assert AuditEntry.objects.filter(action="training.request").count() == 1  # only the request that queued a run


def test_the_database_keeps_one_queued_run_per_kind():
    TrainingRun.objects.create(kind="reward_fast")
    TrainingRun.objects.create(kind="reward_fast", status="failed")
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(kind="reward_fast")


def test_a_request_racing_another_gets_the_run_the_other_queued(monkeypatch):
    """The lookup misses a run another process queued a moment later; the constraint refuses the second row."""
    other = TrainingRun.objects.create(kind="reward_fast", trigger="api")
    real_first, missed = QuerySet.first, []

    def first_misses_once(queryset):
        if queryset.model is TrainingRun and not missed:
            missed.append(True)
            return None
        return real_first(queryset)

    monkeypatch.setattr(QuerySet, "first", first_misses_once)
    run, created = training_run_get_or_request(kind="reward_fast", trigger="cli")
    assert (run.pk, created) == (other.pk, False) and missed
    assert TrainingRun.objects.count() == 1


def test_every_tenth_label_counts_on_a_tenth_of_n_and_never_at_zero():
    """Off at 0; every label below 10; every N/10 labels above."""
    from feedback_app.services.training_runs import every_tenth_label

    assert not any(every_tenth_label(label_id=i, every=0) for i in range(1, 50))
    assert all(every_tenth_label(label_id=i, every=7) for i in range(1, 50))
    assert [i for i in range(1, 61) if every_tenth_label(label_id=i, every=200)] == [20, 40, 60]


def test_an_automatic_request_queues_once_per_kind(db, monkeypatch):
    """The first automatic request of a kind queues a run; while it waits, a second returns None."""
    from feedback_app import tasks
    from feedback_app.services.training_runs import training_run_request_auto

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda *args, **kwargs: None)
    first = training_run_request_auto(kind="reward_fast")
    assert first.trigger == "auto" and first.status == "queued"
    assert training_run_request_auto(kind="reward_fast") is None
    assert training_run_request_auto(kind="policy_dpo").kind == "policy_dpo"
