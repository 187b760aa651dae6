"""Evaluating a reward version on a file of labelled pairs: which version, which pairs, and every refusal."""

import pytest

from feedback_app import training_bridge
from feedback_app.models import RewardModelVersion
from feedback_app.services.evaluation import EvaluationError, reward_model_evaluate_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def evaluated(monkeypatch):
    """Replace the bridge's ``pairs_evaluate``; return what it was asked."""
    seen = {}

    def fake_evaluate(*, version_name, version_path, pairs, models):
        seen.update(version=(version_name, version_path), pairs=[(p.prompt, p.chosen, p.rejected) for p in pairs])
        return {"accuracy": 0.5, "n": len(pairs), "loss": 0.7, "ece": 0.1}

    monkeypatch.setattr(training_bridge, "pairs_evaluate", fake_evaluate)
    return seen


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "good", "rejected": "bad"}\n{"chosen": "\\n\\nHuman: q\\n\\nAssistant: yes", "rejected": "\\n\\nHuman: q\\n\\nAssistant: no"}\n')
    return path


def test_the_active_version_is_evaluated_on_trl_and_hh_pairs(pairs_file, evaluated):
    RewardModelVersion.objects.create(name="rm-3", path="reward/rm-3", status="active")
    assert reward_model_evaluate_file(file=pairs_file) == {"accuracy": 0.5, "n": 2, "version": "rm-3", "loss": 0.7, "ece": 0.1}
    assert evaluated["version"] == ("rm-3", "reward/rm-3")
    assert evaluated["pairs"] == [("p", "good", "bad"), ("\n\nHuman: q\n\nAssistant:", "yes", "no")]


def test_a_named_version_and_a_limit(pairs_file, evaluated):
    RewardModelVersion.objects.create(name="rm-3", path="reward/rm-3", status="active")
    RewardModelVersion.objects.create(name="rm-2", path="reward/rm-2", status="retired")
    result = reward_model_evaluate_file(file=pairs_file, reward_version="rm-2", limit=1)
    assert (result["version"], result["n"]) == ("rm-2", 1) and evaluated["pairs"] == [("p", "good", "bad")]


def test_evaluation_refuses_what_it_cannot_evaluate(tmp_path, evaluated):
    with pytest.raises(EvaluationError, match="no reward model is active"):
        reward_model_evaluate_file(file=tmp_path / "x.jsonl")
    RewardModelVersion.objects.create(name="rm-3", path="reward/rm-3", status="active")
    with pytest.raises(EvaluationError, match="does not exist"):
        reward_model_evaluate_file(file=tmp_path / "x.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a"}\n')
    with pytest.raises(EvaluationError, match="line 1"):
        reward_model_evaluate_file(file=bad)
    with pytest.raises(EvaluationError, match="no reward version named 'rm-9'"):
        reward_model_evaluate_file(file=bad, reward_version="rm-9")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(EvaluationError, match="holds no pairs"):
        reward_model_evaluate_file(file=empty)
    assert evaluated == {}  # nothing reached the model


def test_a_pruned_version_is_refused(tmp_path, evaluated):
    RewardModelVersion.objects.create(name="rm-gone", path="reward/rm-gone", status="pruned")
    with pytest.raises(EvaluationError, match="rm-gone was pruned"):
        reward_model_evaluate_file(file=tmp_path / "x.jsonl", reward_version="rm-gone")
