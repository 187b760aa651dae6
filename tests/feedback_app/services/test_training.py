"""Training runs: claiming, the promotion gate, failures, activation, automatic refits.

The trainer itself is replaced by a stand-in here (the bridge's ``reward_fit``); the real
trainer runs in tests/feedback_app/test_learning_loop.py.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from feedback_app import training_bridge
from feedback_app.models import AuditEntry, PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.labeling import LabelSubmission, assignment_lease_next, label_record
from feedback_app.services.auto_refit import training_auto_refit_if_due
from feedback_app.services.reward_refit import reward_promotion_decision
from feedback_app.services.training import training_run_execute
from feedback_app.services.training_runs import training_run_get_or_request, training_run_request, training_runs_fail_orphaned, training_runs_reap
from feedback_app.services.versions import version_activate

pytestmark = pytest.mark.django_db


@dataclass
class FakeFit:
    accuracy: float = 0.8
    baseline_accuracy: float | None = None
    calls: list = field(default_factory=list)
    fail: Exception | None = None

    def __call__(self, *, pairs, tier, name, parent, baseline_path, warm_start_path, progress, should_stop, models):
        self.calls.append({"n": len(pairs), "tier": tier, "name": name, "parent": parent, "baseline": baseline_path})
        progress({"phase": "heads", "step": 1, "total_steps": 2, "loss": 0.5})
        if self.fail:
            raise self.fail
        if should_stop():
            raise training_bridge.RunStopped("the run was stopped while it trained")

        class Result:
            metrics = {"accuracy": self.accuracy, "loss": 0.5, "ece": 0.1, "bins": []}
            baseline_metrics = None if self.baseline_accuracy is None else {"accuracy": self.baseline_accuracy, "loss": 0.6, "n": 10_000}
            n_train, n_validation, seconds = len(pairs) - 1, 1, 0.1
            manifest = {"backbone": "test-backbone", "tier": tier}

        return Result()


@pytest.fixture
def labelled(make_user, make_comparisons):
    """Six comparisons labelled by one rater."""
    rater = make_user()
    make_comparisons(6)
    for i in range(6):
        a = assignment_lease_next(rater=rater)
        label_record(rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="left" if i % 2 else "right"))
    return rater


@pytest.fixture
def fake_fit(monkeypatch):
    fake = FakeFit()
    monkeypatch.setattr(training_bridge, "reward_fit", fake)
    return fake


def run_now(kind="reward_fast"):
    run = training_run_request(kind=kind, trigger=TrainingRun.Trigger.CLI)
    training_run_execute(run_id=run.pk, worker="w1")
    run.refresh_from_db()
    return run


def test_request_enqueues_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    from feedback_app import tasks

    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "delay", lambda run_id: sent.append(run_id))
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_request(kind="reward_fast", trigger="api")
        assert sent == []  # not before the commit
    assert sent == [run.pk] and run.status == TrainingRun.Status.QUEUED
    with pytest.raises(ValueError, match="unknown training run kind"):
        training_run_request(kind="reward_huge", trigger="api")


def test_first_version_is_promoted(labelled, fake_fit):
    run = run_now()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = run.reward_model_version
    assert version.status == "active" and version.name == f"rm-{run.pk:05d}" and version.path == f"reward/{version.name}"
    assert version.data_range["n_pairs"] == 6 and version.data_range["last_label_id"] == PreferenceLabel.objects.latest("id").pk
    assert run.metrics["val_accuracy"] == 0.8 and run.metrics["promoted"] and "no reward model was active" in run.metrics["gate"]
    assert run.progress["phase"] == "done" and run.worker == "w1" and run.finished_at
    assert AuditEntry.objects.filter(action="rewardmodelversion.promote", target=version.name).exists()


def test_gate_keeps_a_worse_model_as_candidate(labelled, fake_fit):
    first = run_now().reward_model_version
    fake_fit.accuracy, fake_fit.baseline_accuracy = 0.6, 0.8
    second = run_now()
    assert fake_fit.calls[-1]["baseline"] == first.path and fake_fit.calls[-1]["parent"] == first.name
    assert second.reward_model_version.status == "candidate" and not second.metrics["promoted"]
    first.refresh_from_db()
    assert first.status == "active"
    fake_fit.accuracy = 0.79  # within the tolerance of 0.02
    assert run_now().reward_model_version.status == "active"
    first.refresh_from_db()
    assert first.status == "retired"
    assert RewardModelVersion.objects.filter(status="active").count() == 1


def test_promotion_decision():
    assert reward_promotion_decision(new={"accuracy": 0.7}, baseline=None)[0]
    assert reward_promotion_decision(new={"accuracy": 0.70}, baseline={"accuracy": 0.71, "n": 10_000})[0]
    assert not reward_promotion_decision(new={"accuracy": 0.60}, baseline={"accuracy": 0.71, "n": 10_000})[0]
    assert not reward_promotion_decision(new={"accuracy": None}, baseline={"accuracy": 0.71, "n": 100})[0]
    # On 25 pairs one standard error of 0.8 is 0.08: a drop to 0.74 is noise, to 0.70 is not.
    assert reward_promotion_decision(new={"accuracy": 0.74}, baseline={"accuracy": 0.80, "n": 25})[0]
    assert not reward_promotion_decision(new={"accuracy": 0.70}, baseline={"accuracy": 0.80, "n": 25})[0]


def test_a_failing_fit_fails_the_run_and_changes_nothing(labelled, fake_fit):
    active = run_now().reward_model_version
    labels_before = PreferenceLabel.objects.count()
    fake_fit.fail = RuntimeError("CUDA out of memory")
    run = run_now()
    assert run.status == TrainingRun.Status.FAILED and "CUDA out of memory" in run.error
    active.refresh_from_db()
    assert active.status == "active" and RewardModelVersion.objects.count() == 1
    assert PreferenceLabel.objects.count() == labels_before


def test_too_few_labels_is_a_clear_failure(db, fake_fit):
    run = run_now()
    assert run.status == TrainingRun.Status.FAILED and "only 0 decided comparison(s)" in run.error and not fake_fit.calls


def test_a_redelivered_task_never_trains_twice(labelled, fake_fit):
    run = training_run_request(kind="reward_fast", trigger="cli")
    training_run_execute(run_id=run.pk, worker="w1")
    training_run_execute(run_id=run.pk, worker="w2")  # the same message, delivered again
    training_run_execute(run_id=999_999, worker="w2")  # a run that does not exist
    assert len(fake_fit.calls) == 1 and RewardModelVersion.objects.count() == 1


def test_a_run_failed_while_training_stops_and_writes_no_version(labelled, monkeypatch):
    def fit_that_gets_cancelled(*, progress, should_stop, **kwargs):
        TrainingRun.objects.filter(status="running").update(status="failed", error="cancelled by an admin")
        import time

        time.sleep(1.05)
        assert should_stop()
        raise training_bridge.RunStopped("the run was stopped while it trained")

    monkeypatch.setattr(training_bridge, "reward_fit", fit_that_gets_cancelled)
    run = run_now()
    assert run.status == TrainingRun.Status.FAILED and run.error == "cancelled by an admin"
    assert not RewardModelVersion.objects.exists()


def test_orphaned_and_stale_runs_are_failed(db):
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


def test_rollback_to_an_earlier_version(admin_user, db):
    v1 = RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1")
    v2 = RewardModelVersion.objects.create(name="rm-2", path="reward/rm-2", parent=v1)
    version_activate(version=v1, user=None, action="promote")
    version_activate(version=v2, user=None, action="promote")
    version_activate(version=v1, user=admin_user, action="rollback", reason="v2 misbehaves")
    v1.refresh_from_db(), v2.refresh_from_db()
    assert (v1.status, v2.status) == ("active", "retired")
    entry = AuditEntry.objects.filter(action="rewardmodelversion.rollback").get()
    assert entry.actor == admin_user and entry.details == {"previous": "rm-2", "reason": "v2 misbehaves"}


def test_automatic_refit_every_n_labels(settings, labelled, monkeypatch):
    from feedback_app import tasks

    monkeypatch.setattr(tasks.training_run_execute, "delay", lambda run_id: None)
    settings.REFIT_EVERY_N_LABELS = 10
    assert training_auto_refit_if_due() is None  # 6 labels so far
    settings.REFIT_EVERY_N_LABELS = 5
    run = training_auto_refit_if_due()
    assert run.trigger == "auto" and run.kind == "reward_fast"
    assert training_auto_refit_if_due() is None  # one automatic run pending at a time
    assert TrainingRun.objects.filter(trigger="auto").count() == 1


def test_labels_trigger_the_refit_after_commit(settings, make_user, make_comparisons, monkeypatch, django_capture_on_commit_callbacks):
    from feedback_app import tasks

    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "delay", lambda run_id: sent.append(run_id))
    settings.REFIT_EVERY_N_LABELS = 3
    rater = make_user()
    make_comparisons(4)
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            a = assignment_lease_next(rater=rater)
            label_record(rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="left"))
    assert len(sent) == 1 and TrainingRun.objects.get().trigger == "auto"


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


def test_the_database_keeps_one_queued_run_per_kind(db):
    TrainingRun.objects.create(kind="reward_fast")
    TrainingRun.objects.create(kind="reward_fast", status="failed")
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(kind="reward_fast")


def test_a_request_racing_another_gets_the_run_the_other_queued(db, monkeypatch):
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


def test_the_automatic_rule_is_one_pending_run_per_kind(settings, labelled, monkeypatch):
    """An automatic run of another kind does not hold back a refit; a queued refit of any trigger does."""
    from feedback_app import tasks

    monkeypatch.setattr(tasks.training_run_execute, "delay", lambda run_id: None)
    settings.REFIT_EVERY_N_LABELS = 5
    TrainingRun.objects.create(kind="policy_dpo", trigger="auto", status="running")
    manual = TrainingRun.objects.create(kind="reward_fast", trigger="manual")
    assert training_auto_refit_if_due() is None  # the queued manual refit takes these labels
    TrainingRun.objects.filter(pk=manual.pk).update(status="running")
    run = training_auto_refit_if_due()
    assert run.kind == "reward_fast" and run.trigger == "auto"
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(kind="reward_fast", trigger="auto", status="running")
