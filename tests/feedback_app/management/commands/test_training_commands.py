import json

import pytest
from django.core.management import CommandError, call_command

from feedback_app import training_bridge
from feedback_app.models import RewardModelVersion, TrainingRun

pytestmark = pytest.mark.django_db


def test_train_reward_model_queues_a_run(capsys, monkeypatch):
    from feedback_app import tasks

    monkeypatch.setattr(tasks.training_run_execute, "delay", lambda run_id: None)
    call_command("train_reward_model", "--tier", "full")
    assert "Queued training run" in capsys.readouterr().out
    run = TrainingRun.objects.get()
    assert (run.kind, run.trigger, run.status) == ("reward_full", "cli", "queued")


def test_train_reward_model_wait_reports_a_failure(monkeypatch):
    """With --wait the command follows the run and fails loudly when the run fails."""
    from feedback_app import tasks
    from feedback_app.services.training import training_run_execute

    monkeypatch.setattr(tasks.training_run_execute, "delay", lambda run_id: training_run_execute(run_id=run_id, worker="cli"))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    with pytest.raises(CommandError, match="failed: only 0 decided comparison"):
        call_command("train_reward_model", "--wait", "--timeout", "30")


def test_evaluate_reward_model_prints_json(tmp_path, capsys, monkeypatch):
    RewardModelVersion.objects.create(name="rm-3", path="reward/rm-3", status="active")
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "good", "rejected": "bad"}\n{"chosen": "\\n\\nHuman: q\\n\\nAssistant: yes", "rejected": "\\n\\nHuman: q\\n\\nAssistant: no"}\n')
    seen = {}

    def fake_evaluate(*, version_name, version_path, pairs, models):
        seen["pairs"] = [(p.prompt, p.chosen, p.rejected) for p in pairs]
        return {"accuracy": 0.5, "n": len(pairs), "loss": 0.7, "ece": 0.1}

    monkeypatch.setattr(training_bridge, "pairs_evaluate", fake_evaluate)
    call_command("evaluate_reward_model", str(path))
    out = json.loads(capsys.readouterr().out)
    assert out == {"accuracy": 0.5, "n": 2, "version": "rm-3", "loss": 0.7, "ece": 0.1}
    assert seen["pairs"][1] == ("\n\nHuman: q\n\nAssistant:", "yes", "no")


def test_evaluate_reward_model_bad_input(tmp_path):
    with pytest.raises(CommandError, match="no reward model is active"):
        call_command("evaluate_reward_model", str(tmp_path / "x.jsonl"))
    RewardModelVersion.objects.create(name="rm-3", path="reward/rm-3", status="active")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("evaluate_reward_model", str(tmp_path / "x.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a"}\n')
    with pytest.raises(CommandError, match="line 1"):
        call_command("evaluate_reward_model", str(bad))
    with pytest.raises(CommandError, match="no reward version named 'rm-9'"):
        call_command("evaluate_reward_model", str(bad), "--reward-version", "rm-9")


def test_evaluate_reward_model_refuses_a_pruned_version(tmp_path):
    RewardModelVersion.objects.create(name="rm-gone", path="reward/rm-gone", status="pruned")
    with pytest.raises(CommandError, match="rm-gone was pruned"):
        call_command("evaluate_reward_model", str(tmp_path / "x.jsonl"), "--reward-version", "rm-gone")
