"""A policy update's gates and its held-out prompts (the DPO run itself runs in tests/scenarios/test_loop_with_real_models.py)."""

import pytest

from feedback_app import training_bridge
from feedback_app.models import ImportBatch, Prompt, RewardModelVersion
from feedback_app.services.policy_update import HELD_OUT_FRACTION, prompts_held_out

pytestmark = pytest.mark.django_db


def test_policy_dpo_needs_a_reward_model(synthetic_preferences, run_now):
    synthetic_preferences(4)
    run = run_now("policy_dpo")
    assert run.status == "failed" and "needs an active reward model" in run.error


def test_the_held_out_prompts_are_rm_trainers_validation_split_of_the_published_ones():
    """The split follows is_validation on "prompt-<id>", in id order, up to ``limit``; staged imports are left out."""
    staged = ImportBatch.objects.create(kind="prompts", filename="staged.jsonl", sha256="staged", published=False)
    prompts = [Prompt.objects.create(text=f"q{i}", source="test") for i in range(60)]
    hidden = [Prompt.objects.create(text=f"s{i}", source="test", import_batch=staged) for i in range(60)]
    expected = [p.pk for p in prompts if training_bridge.is_validation(f"prompt-{p.pk}", HELD_OUT_FRACTION)]
    assert 0 < len(expected) < len(prompts)
    assert [p.pk for p in prompts_held_out(limit=100)] == expected
    assert [p.pk for p in prompts_held_out(limit=2)] == expected[:2]
    assert not {p.pk for p in prompts_held_out(limit=1000)} & {p.pk for p in hidden}


def test_policy_dpo_needs_held_out_prompts(synthetic_preferences, run_now, monkeypatch):
    """With every prompt on the training side there is nothing to judge the new policy on: the run says so."""
    synthetic_preferences(4)
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active")
    monkeypatch.setattr(training_bridge, "policy_materialise_base", lambda *, name: (f"policy/{name}", {}))
    monkeypatch.setattr(training_bridge, "generator_source", lambda: ("models/gen", None))
    monkeypatch.setattr(training_bridge, "is_validation", lambda key, fraction: False)
    monkeypatch.setattr(training_bridge, "dpo_train", lambda **kwargs: pytest.fail("trained without held-out prompts"))
    run = run_now("policy_dpo")
    assert run.status == "failed" and "no held-out prompts" in run.error
