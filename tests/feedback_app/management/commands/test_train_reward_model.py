"""manage.py train_reward_model: queue a reward refit of a tier; --wait follows it and fails loudly with the run."""

import pytest
from django.core.management import CommandError, call_command

from feedback_app.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_train_reward_model_queues_a_run(capsys, monkeypatch):
    from feedback_app import tasks

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: None)
    call_command("train_reward_model", "--tier", "full")
    assert "Queued training run" in capsys.readouterr().out
    run = TrainingRun.objects.get()
    assert (run.kind, run.trigger, run.status) == ("reward_full", "cli", "queued")


def test_train_reward_model_wait_reports_a_failure(monkeypatch):
    """With --wait the command follows the run and fails loudly when the run fails."""
    from feedback_app import tasks
    from feedback_app.services.training import training_run_execute

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: training_run_execute(run_id=args[0], worker="cli"))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    with pytest.raises(CommandError, match="failed: only 0 decided comparison"):
        call_command("train_reward_model", "--wait", "--timeout", "30")
