"""manage.py train_policy: queue a DPO policy update; --wait follows it and fails loudly with the run."""

import pytest
from django.core.management import CommandError, call_command

from feedback_app.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_train_policy_queues_a_dpo_run(capsys, monkeypatch):
    from feedback_app import tasks

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: None)
    call_command("train_policy")
    run = TrainingRun.objects.get()
    assert (run.kind, run.trigger, run.status) == ("policy_dpo", "cli", "queued")
    assert f"Queued training run {run.pk} (policy_dpo, campaign default)." in capsys.readouterr().out


def test_train_policy_wait_reports_a_failure(monkeypatch):
    """Without an active reward model the run fails, and --wait says why."""
    from feedback_app import tasks
    from feedback_app.services.training import training_run_execute

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: training_run_execute(run_id=args[0], worker="cli"))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    with pytest.raises(CommandError, match="failed: a DPO run needs an active reward model"):
        call_command("train_policy", "--wait", "--timeout", "30")
