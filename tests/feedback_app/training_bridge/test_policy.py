import pytest

from feedback_app.training_bridge import RunStopped
from feedback_app.training_bridge.holder import ModelHolder
from feedback_app.training_bridge.policy import dpo_train, pairs_choose


def test_a_cancelled_dpo_run_becomes_run_stopped(monkeypatch, settings, tmp_path):
    """rm_trainer's DPOCancelled reaches the site as RunStopped, by type."""
    from rm_trainer import dpo

    settings.MODEL_STORE = str(tmp_path)

    def cancelled(*args, **kwargs):
        raise dpo.DPOCancelled("stopped after 1 of 4 steps")

    monkeypatch.setattr(dpo, "train_dpo", cancelled)
    with pytest.raises(RunStopped, match="stopped while it trained"):
        dpo_train(base_name="policy-base", base_path="policy/policy-base", name="policy-00002", pairs=[],
                  progress=lambda event: None, should_stop=lambda: True)


def test_without_a_reward_model_pairs_are_drawn_at_random_without_a_score():
    """Before the first reward model, each prompt with two distinct candidates gets a random pair and no score."""
    picks = pairs_choose(reward_name=None, reward_path=None, prompts=[("q", []), ("r", [])], candidates=[["x", "y", "z"], ["only"]],
                         strategy="uncertain", seed=1, models=ModelHolder())
    (i, j, score), none = picks
    assert i != j and {i, j} <= {0, 1, 2} and score is None and none is None
