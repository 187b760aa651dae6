import pytest

from feedback_app.training_bridge import RunStopped
from feedback_app.training_bridge.holder import ModelHolder
from feedback_app.training_bridge.reward import comparisons_prob_a_wins, reward_fit


def test_a_cancelled_fit_becomes_run_stopped(monkeypatch, settings, tmp_path):
    """rm_trainer's FitCancelled reaches the site as RunStopped, by type."""
    from rm_trainer import train

    settings.MODEL_STORE = str(tmp_path)

    def cancelled(*args, **kwargs):
        raise train.FitCancelled("fit stopped on request during heads (step 1 of 2)")

    monkeypatch.setattr(train, "fit", cancelled)
    monkeypatch.setattr(ModelHolder, "encoders", property(lambda self: None))
    with pytest.raises(RunStopped, match="stopped while it trained"):
        reward_fit(pairs=[], tier="fast", name="rm-00001", parent=None, baseline_path=None, warm_start_path=None,
                   progress=lambda event: None, should_stop=lambda: True, models=ModelHolder())


def test_other_fit_errors_pass_through(monkeypatch, settings, tmp_path):
    """Only a cancellation is translated; any other failure keeps its type and message."""
    from rm_trainer import train

    settings.MODEL_STORE = str(tmp_path)
    monkeypatch.setattr(train, "fit", lambda *a, **k: (_ for _ in ()).throw(MemoryError("out of memory")))
    monkeypatch.setattr(ModelHolder, "encoders", property(lambda self: None))
    with pytest.raises(MemoryError):
        reward_fit(pairs=[], tier="fast", name="rm-00001", parent=None, baseline_path=None, warm_start_path=None,
                   progress=lambda event: None, should_stop=lambda: False, models=ModelHolder())


def test_comparisons_prob_a_wins_is_the_logistic_of_the_reward_gap(monkeypatch):
    """P(A beats B) is σ(r_a - r_b), per (prompt, context, a, b)."""

    class Scorer:
        def score_batch(self, items):
            self.items = items
            return [(1.0, 1.0), (2.0, 0.0)]

    scorer = Scorer()
    monkeypatch.setattr(ModelHolder, "batch_scorer", lambda self, name, path: scorer)
    p = comparisons_prob_a_wins(version_name="rm-1", version_path="reward/rm-1", models=ModelHolder(),
                                items=[("q", [], "a", "b"), ("r", [{"role": "user", "content": "hi"}], "c", "d")])
    assert p[0] == 0.5 and p[1] == pytest.approx(0.8808, abs=1e-4)
    assert scorer.items[1][0] == "\n\nHuman: hi\n\nHuman: r\n\nAssistant:"
