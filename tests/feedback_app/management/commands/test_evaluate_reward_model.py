"""manage.py evaluate_reward_model: the evaluation service's result as JSON, its refusals as a CommandError.

What the evaluation reads and refuses is tested in tests/feedback_app/services/test_evaluation.py.
"""

import json

import pytest
from django.core.management import CommandError, call_command

from feedback_app import training_bridge
from feedback_app.models import RewardModelVersion

pytestmark = pytest.mark.django_db


def test_evaluate_reward_model_prints_json(tmp_path, capsys, monkeypatch):
    RewardModelVersion.objects.create(name="rm-3", path="reward/rm-3", status="active")
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "good", "rejected": "bad"}\n{"prompt": "q", "chosen": "yes", "rejected": "no"}\n')
    monkeypatch.setattr(training_bridge, "pairs_evaluate", lambda *, version_name, version_path, pairs, models: {
        "accuracy": 0.5, "n": len(pairs), "loss": 0.7, "ece": 0.1})
    call_command("evaluate_reward_model", str(path), "--limit", "1")
    assert json.loads(capsys.readouterr().out) == {"accuracy": 0.5, "n": 1, "version": "rm-3", "loss": 0.7, "ece": 0.1}


def test_evaluate_reward_model_refusals_are_command_errors(tmp_path):
    with pytest.raises(CommandError, match="no reward model is active"):
        call_command("evaluate_reward_model", str(tmp_path / "x.jsonl"))
    RewardModelVersion.objects.create(name="rm-gone", path="reward/rm-gone", status="pruned")
    with pytest.raises(CommandError, match="rm-gone was pruned"):
        call_command("evaluate_reward_model", str(tmp_path / "x.jsonl"), "--reward-version", "rm-gone")
