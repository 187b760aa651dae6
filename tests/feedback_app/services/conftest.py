"""Fixtures the services' tests share: a stand-in for the bridge's ``reward_fit``, six labels, an active reward model, a label a
rater can undo, and a lease with one held ahead."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app import training_bridge
from feedback_app.models import Assignment, PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_ahead, assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services.versions import version_activate


@dataclass
class FakeFit:
    """The bridge's ``reward_fit`` without a model: it records each call and returns the metrics it is set to."""

    accuracy: float = 0.8
    baseline_accuracy: float | None = None
    calls: list = field(default_factory=list)
    fail: Exception | None = None

    def __call__(self, *, pairs, tier, name, parent, baseline_path, warm_start_path, progress, should_stop, models, warm_heads_path=None,
                 facts=None):
        self.calls.append({"n": len(pairs), "tier": tier, "name": name, "parent": parent, "baseline": baseline_path,
                           "warm_heads": warm_heads_path, "facts": None if facts is None else len(facts.digests)})
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
        a = assignment_lease_next(campaign=campaign_default(), rater=rater)
        label_record(campaign=campaign_default(), rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="left" if i % 2 else "right"))
    return rater


@pytest.fixture
def reward_active():
    """An active reward model of the default campaign (its policy updates need one)."""
    version = RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001")
    version_activate(version=version, user=None, action="promote", reason="test")
    return version


@pytest.fixture
def fake_fit(monkeypatch):
    """Replace the bridge's ``reward_fit`` with a FakeFit and return it."""
    fake = FakeFit()
    monkeypatch.setattr(training_bridge, "reward_fit", fake)
    return fake


@pytest.fixture
def run_now(db):
    """Return a function that queues a run of a kind, carries it out on worker "w1", and returns it reloaded."""
    from feedback_app.services.training import training_run_execute
    from feedback_app.services.training_runs import training_run_request

    def run(kind: str = "reward_fast") -> TrainingRun:
        queued = training_run_request(kind=kind, trigger=TrainingRun.Trigger.CLI)
        training_run_execute(run_id=queued.pk, worker="w1")
        queued.refresh_from_db()
        return queued

    return run


@pytest.fixture
def undoable_label(db):
    """Make a rater's label on a comparison as the studio stores it, with its submitted lease, made ``at`` (now by default): the
    label ``label_undo_last`` withdraws while it is the rater's newest and within the lease time."""

    def make(comparison, rater, *, winner="a", at=None):
        at = at or timezone.now()
        assignment = Assignment.objects.create(comparison=comparison, rater=rater, a_on_left=True, status=Assignment.Status.SUBMITTED,
                                               leased_at=at, lease_expires_at=at + timedelta(minutes=10), finished_at=at)
        label = PreferenceLabel.objects.create(comparison=comparison, rater=rater, assignment=assignment, winner=winner, strength=2,
                                               a_on_left=True, time_on_task_ms=2384)
        PreferenceLabel.objects.filter(pk=label.pk).update(created_at=at)  # made then (created_at is set on insert)
        label.created_at = at
        return label

    return make


@pytest.fixture
def new_worker():
    """The test starts as a training worker that has read nothing yet (``services.training_data``), and leaves none behind."""
    from feedback_app.services import training_data

    training_data.forget()
    yield
    training_data.forget()


@pytest.fixture
def undoable_completion(make_user, undoable_label):
    """Make a comparison completed 3 minutes before ``now`` by two labels, a rater's and then a latecomer's the latecomer can still
    undo; return the comparison, the latecomer and their label."""

    def make(rater, *, now):
        from feedback_app.models import Comparison, Prompt

        latecomer = make_user()
        prompt = Prompt.objects.create(text="Can I return it?", context=[])
        a, b = prompt.responses.create(text="Yes, within 30 days."), prompt.responses.create(text="No.")
        comparison = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=2, label_count=2,
                                               status="complete", completed_at=now - timedelta(minutes=3))
        undoable_label(comparison, rater, at=now - timedelta(minutes=4))
        return comparison, latecomer, undoable_label(comparison, latecomer, winner="b", at=now - timedelta(minutes=3))

    return make


@pytest.fixture
def leased_with_one_ahead(settings):
    """Lease a rater their next comparison of a campaign and the one their page holds ready after it (LABEL_PREFETCH on):
    ``leased_with_one_ahead(rater, campaign)`` gives (shown, ahead)."""
    settings.LABEL_PREFETCH = True

    def lease(rater, campaign):
        shown = assignment_lease_next(campaign=campaign, rater=rater)
        return shown, assignment_lease_ahead(campaign=campaign, rater=rater, shown=shown)

    return lease
