"""Carrying out a run: it is claimed once, and every failure ends it with its reason.

The trainer is the FakeFit of conftest.py; the real one runs in tests/scenarios/test_loop_with_real_models.py.
"""

import pytest

from feedback_app import training_bridge
from feedback_app.models import PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.training import training_run_execute
from feedback_app.services.training_runs import training_run_request

pytestmark = pytest.mark.django_db


def test_a_redelivered_task_never_trains_twice(labelled, fake_fit):
    run = training_run_request(kind="reward_fast", trigger="cli")
    training_run_execute(run_id=run.pk, worker="w1")
    training_run_execute(run_id=run.pk, worker="w2")  # the same message, delivered again
    training_run_execute(run_id=999_999, worker="w2")  # a run that does not exist
    assert len(fake_fit.calls) == 1 and RewardModelVersion.objects.count() == 1
    run.refresh_from_db()
    assert (run.status, run.worker) == ("succeeded", "w1")


def test_a_run_whose_name_an_older_checkpoint_holds_writes_the_next_free_name(labelled, fake_fit):
    """A database recreated beside an old model store numbers its runs from 1 again: the refit goes on under "rm-0000N-2"."""
    run = training_run_request(kind="reward_fast", trigger="cli")
    store = training_bridge.checkpoint_store()
    for name in (f"rm-{run.pk:05d}", f"rm-{run.pk:05d}-2"):
        store.write("reward", name, {}, lambda folder: (folder / "heads.pt").write_bytes(b"an older studio's"))
    training_run_execute(run_id=run.pk, worker="w1")
    run.refresh_from_db()
    assert run.status == "succeeded" and fake_fit.calls[0]["name"] == f"rm-{run.pk:05d}-3"
    assert (run.reward_model_version.name, run.reward_model_version.path) == (f"rm-{run.pk:05d}-3", f"reward/rm-{run.pk:05d}-3")


def test_a_failing_fit_fails_the_run_with_its_reason_and_changes_nothing(labelled, fake_fit, run_now):
    """An unexpected exception is recorded with its type, message and traceback; the active version and the labels stay."""
    active = run_now().reward_model_version
    labels_before = PreferenceLabel.objects.count()
    fake_fit.fail = RuntimeError("CUDA out of memory")
    run = run_now()
    assert run.status == TrainingRun.Status.FAILED and run.error.startswith("RuntimeError: CUDA out of memory\n\nTraceback")
    active.refresh_from_db()
    assert active.status == "active" and RewardModelVersion.objects.count() == 1
    assert PreferenceLabel.objects.count() == labels_before


def test_a_stopped_run_is_recorded_as_its_message(labelled, fake_fit, run_now):
    """RunStopped (the bridge's word for rm_trainer's cancellation) becomes the error as it is, without a traceback."""
    fake_fit.fail = training_bridge.RunStopped("the run was stopped while it trained")
    run = run_now()
    assert (run.status, run.error) == ("failed", "the run was stopped while it trained")
    assert not RewardModelVersion.objects.exists()


def test_a_training_error_is_recorded_as_its_message(fake_fit, run_now):
    """A run that cannot proceed (too few labels) says why, without a traceback."""
    run = run_now()
    assert run.status == "failed" and run.error.startswith("only 0 decided comparison(s)") and "Traceback" not in run.error


def test_a_run_failed_while_training_stops_and_writes_no_version(labelled, monkeypatch, run_now):
    """The monitor notices the cancel (checked once a second); the admin's reason stays the run's error."""

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
