"""The model holder: one scorer by version name, at most two generators, swaps load the new version once."""

import pytest

from feedback_app.training_bridge import holder as holder_module
from feedback_app.training_bridge.holder import MAX_GENERATORS, ModelHolder


class Loaded:
    def __init__(self, folder):
        self.folder = str(folder)


@pytest.fixture
def loads(monkeypatch, settings, tmp_path):
    """Replace the two loaders of rm_trainer by doubles that record what they loaded."""
    from rm_trainer.generator import Generator
    from rm_trainer.scorer import RewardScorer

    settings.MODEL_STORE, settings.TORCH_THREADS = str(tmp_path), 0
    seen = []
    monkeypatch.setattr(RewardScorer, "load", classmethod(lambda cls, folder, device, encoders: seen.append(("scorer", str(folder))) or Loaded(folder)))
    monkeypatch.setattr(Generator, "load", classmethod(lambda cls, folder, device: seen.append(("generator", str(folder))) or Loaded(folder)))
    monkeypatch.setattr(ModelHolder, "encoders", property(lambda self: "encoders"))
    return seen


def test_the_scorer_is_kept_until_another_version_is_asked_for(loads, tmp_path):
    """The same name returns the loaded scorer; a new name (a swap) loads the new version and drops the old."""
    models = ModelHolder()
    first = models.scorer("rm-1", "reward/rm-1")
    assert models.scorer("rm-1", "reward/rm-1") is first
    second = models.scorer("rm-2", "reward/rm-2")
    assert second is not first and second.folder == str(tmp_path / "reward/rm-2")
    assert loads == [("scorer", str(tmp_path / "reward/rm-1")), ("scorer", str(tmp_path / "reward/rm-2"))]


def test_generators_beyond_two_evict_the_least_recently_used(loads):
    """The active policy and one opponent stay loaded; a third evicts whichever was used longest ago."""
    models = ModelHolder()
    a = models.generator("policy-a", "policy/policy-a")
    models.generator("policy-b", "policy/policy-b")
    assert models.generator("policy-a", "policy/policy-a") is a  # a is now the most recent
    models.generator("policy-c", "policy/policy-c")  # evicts b
    assert MAX_GENERATORS == 2 and models.generator("policy-a", "policy/policy-a") is a
    models.generator("policy-b", "policy/policy-b")  # loaded again
    assert [name for kind, name in loads].count(loads[1][1]) == 2 and len(loads) == 4


def test_an_unkept_generator_is_loaded_every_time_and_not_kept(loads):
    """A candidate judged once is loaded without taking a place among the kept generators."""
    models = ModelHolder()
    kept = models.generator("policy-a", "policy/policy-a")
    models.generator_unkept("policy/policy-new")
    models.generator_unkept("policy/policy-new")
    assert models.generator("policy-a", "policy/policy-a") is kept and len(loads) == 3


def test_two_holders_share_nothing(loads):
    """Each holder loads for itself: there is no module-level state."""
    ModelHolder().scorer("rm-1", "reward/rm-1")
    ModelHolder().scorer("rm-1", "reward/rm-1")
    assert len(loads) == 2 and not hasattr(holder_module, "process_models")
