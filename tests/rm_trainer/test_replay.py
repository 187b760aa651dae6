import dataclasses

import pytest
import torch

from rm_trainer.data import PreferencePair, split_pairs
from rm_trainer.ensemble import RewardEnsemble
from rm_trainer.replay import WarmHeads, pair_group, replay_plan
from rm_trainer.store import CheckpointStore
from rm_trainer.train import fit
from tests.rm_trainer.conftest import synthetic_pairs
from tests.rm_trainer.test_train import fast_config


@pytest.fixture
def learned(tiny_backbone, tmp_path):
    """A fast checkpoint fitted cold on 200 pairs, its store and its config."""
    config = fast_config(tiny_backbone, replay_pairs=50, embedding_cache_dir=str(tmp_path / "cache"))
    store = CheckpointStore(tmp_path / "store")
    first = fit(synthetic_pairs(200), config, store=store, name="v1")
    return first, store, config


def groups(pairs):
    return frozenset(pair_group(p) for p in pairs)


def test_a_fit_given_warm_heads_trains_on_the_new_pairs_and_a_bounded_replay(learned):
    """v2 starts from v1's heads: every new pair, 50 of the 200 v1 learned, validated against v1 on the same pairs."""
    first, store, config = learned
    new = synthetic_pairs(100, seed=1, prefix="n")
    second = fit(synthetic_pairs(200) + new, config, store=store, name="v2", parent="v1", baseline=first.path,
                 warm_heads=WarmHeads(first.path, groups(new)))
    replay = second.manifest["replay"]
    assert replay == {"warm_from": "v1", "new_pairs": 100, "replayed": 50, "learned_before": 200, "pairs_given": 300}
    assert second.n_train + second.n_validation == 150 and second.manifest["data"]["n_pairs"] == 300
    assert second.manifest["heads"]["warm"] is True and second.manifest["hyperparameters"]["replay_pairs"] == 50
    assert second.metrics["accuracy"] > 0.8
    assert second.baseline_metrics["n"] == second.metrics["n"] == second.n_validation


def test_the_replay_is_every_new_pair_and_a_fixed_sample_of_the_learned(learned):
    """The plan keeps the new pairs and draws the replayed ones from the learned, the same draw for the same pairs."""
    first, _, config = learned
    old, new = synthetic_pairs(200), synthetic_pairs(30, seed=2, prefix="n")
    warm = WarmHeads(first.path, groups(new))
    plan = replay_plan(old + new, warm, config, identity=first.manifest["backbone_identity"], dim=first.manifest["embedding_dim"])
    ids = [p.pair_id for p in plan.pairs]
    assert set(ids) >= {p.pair_id for p in new} and len(ids) == len(set(ids)) == 80
    assert set(ids) - {p.pair_id for p in new} <= {p.pair_id for p in old}
    again = replay_plan(old + new, warm, config, identity=first.manifest["backbone_identity"], dim=first.manifest["embedding_dim"])
    assert [p.pair_id for p in again.pairs] == ids
    saved = RewardEnsemble.load(first.path)
    assert all(torch.equal(plan.init.state_dict()[k], v) for k, v in saved.state_dict().items())


def test_a_pair_s_group_is_its_split_key_so_a_rewrite_is_new_with_its_comparison():
    """Pairs a rewrite implies belong to their comparison's group; a plain pair is its own."""
    plain = PreferencePair("17", "p", "a", "b")
    rewrite = PreferencePair("17-rewrite-3-a", "p", "r", "a", split_key="17")
    assert pair_group(plain) == pair_group(rewrite) == "17"


@pytest.mark.parametrize("case, why", [
    ("no warm heads", "no warm heads given"),
    ("replay off", "replay_pairs is 0"),
    ("small history", "learned 200 pairs, not more than replay_pairs (200)"),
    ("other shape", "another shape"),
    ("other length", "not a fast one of this encoder and length"),
    ("other encoder", "not a fast one of this encoder and length"),
    ("missing", "cannot be read (FileNotFoundError"),
])
def test_a_fit_stays_cold_on_every_pair_when_warm_heads_cannot_serve(learned, case, why):
    """Each reason a warm start cannot apply leaves the fit cold, on every pair given, and says why."""
    first, _, config = learned
    identity, dim = first.manifest["backbone_identity"], first.manifest["embedding_dim"]
    pairs = synthetic_pairs(200) + synthetic_pairs(10, seed=3, prefix="n")
    warm = WarmHeads(first.path + ("-gone" if case == "missing" else ""), groups(pairs[200:]))
    changes = {"replay off": {"replay_pairs": 0}, "small history": {"replay_pairs": 200}, "other shape": {"ensemble_size": 3},
               "other length": {"max_length": 64}}
    config = dataclasses.replace(config, **changes.get(case, {}))
    plan = replay_plan(pairs, None if case == "no warm heads" else warm, config,
                       identity="another-encoder" if case == "other encoder" else identity, dim=dim)
    assert plan.init is None and plan.pairs == pairs
    assert plan.record["warm_from"] is None and why in plan.record["why_cold"]


def test_a_full_tier_checkpoint_never_warms_a_fast_fit(tiny_backbone, tmp_path, learned):
    """The heads of a fine-tuned encoder sit on other embeddings: a fast fit from them stays cold."""
    _, store, config = learned
    full = fit(synthetic_pairs(200), dataclasses.replace(config, tier="full", full_batch_size=32), store=store, name="f1")
    pairs = synthetic_pairs(200) + synthetic_pairs(10, seed=3, prefix="n")
    result = fit(pairs, config, store=store, name="v2", warm_heads=WarmHeads(full.path, groups(pairs[200:])))
    assert result.manifest["replay"]["warm_from"] is None and result.manifest["heads"]["warm"] is False
    assert result.n_train + result.n_validation == 210 == len(split_pairs(pairs, config.validation_fraction)[0]) + result.n_validation
