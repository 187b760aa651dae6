import dataclasses
import shutil

import numpy as np
import pytest
import torch

from rm_trainer.data import PreferencePair, split_pairs
from rm_trainer.ensemble import RewardEnsemble
from rm_trainer.pair_facts import PairFacts, pair_facts
from rm_trainer.replay import PAIRS_FILE, pair_digests, replay_plan
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


def plan_for(pairs, first, config, warm=None):
    return replay_plan(pairs, pair_digests(pairs), first.path if warm is None else warm, config,
                       identity=first.manifest["backbone_identity"], dim=first.manifest["embedding_dim"])


def flipped(pairs):
    return [dataclasses.replace(p, chosen=p.rejected, rejected=p.chosen) for p in pairs]


def test_a_fast_checkpoint_keeps_a_digest_of_every_pair_it_was_given(learned):
    first, _, _ = learned
    digests = np.load(f"{first.path}/{PAIRS_FILE}")
    assert digests.dtype == np.uint64 and np.array_equal(digests, pair_digests(synthetic_pairs(200)))


def test_a_warm_fit_trains_on_the_new_pairs_and_a_bounded_replay_and_learns_them(learned):
    """v2 starts from v1's heads: every new pair, 50 of the 200 v1 learned, validated against v1 on the same pairs; new pairs
    that contradict what v1 learned move the heads their way."""
    first, store, config = learned
    new = flipped(synthetic_pairs(150, seed=1, prefix="n"))
    second = fit(synthetic_pairs(200) + new, config, store=store, name="v2", parent="v1", baseline=first.path, warm_heads=first.path)
    assert second.manifest["replay"] == {"warm_from": "v1", "new_pairs": 150, "replayed": 50, "learned_before": 200, "gone": 0,
                                         "pairs_given": 350}
    assert second.n_train + second.n_validation == 200 and second.manifest["data"]["n_pairs"] == 350
    assert second.manifest["heads"]["warm"] is True and second.manifest["hyperparameters"]["replay_pairs"] == 50
    assert second.baseline_metrics["n"] == second.metrics["n"] == second.n_validation
    before, after = RewardEnsemble.load(first.path), RewardEnsemble.load(second.path)
    assert torch.equal(before.feature_mean, after.feature_mean) and not torch.equal(before.w1, after.w1)
    # most pairs v2 validated on are flipped ones, on which v1 was mostly wrong; v2 does better than v1 did
    assert second.metrics["accuracy"] > second.baseline_metrics["accuracy"] + 0.1


def test_the_replay_is_every_new_pair_and_a_fixed_sample_of_the_learned(learned):
    first, _, config = learned
    old, new = synthetic_pairs(200), synthetic_pairs(30, seed=2, prefix="n")
    plan = plan_for(old + new, first, config)
    ids = [p.pair_id for p in plan.pairs]
    assert set(ids) >= {p.pair_id for p in new} and len(ids) == len(set(ids)) == 80
    assert set(ids) - {p.pair_id for p in new} <= {p.pair_id for p in old}
    assert [p.pair_id for p in plan_for(old + new, first, config).pairs] == ids
    saved = RewardEnsemble.load(first.path)
    assert all(torch.equal(plan.init.state_dict()[k], v) for k, v in saved.state_dict().items())


def test_a_changed_pair_is_new_and_its_old_self_counts_as_gone(learned):
    """A verdict that swaps a pair, or a weight that moves by a tenth, makes it new; drift below a tenth does not."""
    first, _, config = learned
    pairs = synthetic_pairs(200)
    pairs[0] = dataclasses.replace(pairs[0], chosen=pairs[0].rejected, rejected=pairs[0].chosen)
    pairs[1] = dataclasses.replace(pairs[1], weight=0.8)
    pairs[2] = dataclasses.replace(pairs[2], weight=0.98)
    plan = plan_for(pairs, first, config)
    assert plan.record["new_pairs"] == 2 and plan.record["gone"] == 2 and plan.record["learned_before"] == 198
    assert {p.pair_id for p in plan.pairs} >= {"p0", "p1"}


@pytest.mark.parametrize("case, why", [
    ("no warm heads", "no warm heads given"),
    ("replay off", "replay_pairs is 0"),
    ("small history", "learned 200 of these pairs, not more than replay_pairs (200)"),
    ("other shape", "another shape"),
    ("other length", "not a fast one of this encoder and length"),
    ("other encoder", "not a fast one of this encoder and length"),
    ("missing", "lacks manifest.json"),
    ("no digests", "lacks pairs.npy (written before warm heads"),
    ("many gone", "11 of the 200 pairs the warm heads learned are gone or changed (more than 5%)"),
])
def test_a_fit_stays_cold_on_every_pair_when_warm_heads_cannot_serve(learned, tmp_path, case, why):
    """Each reason a warm start cannot apply leaves the fit cold, on every pair given, and says why."""
    first, _, config = learned
    identity, dim = first.manifest["backbone_identity"], first.manifest["embedding_dim"]
    pairs = synthetic_pairs(200)[11 if case == "many gone" else 0:] + synthetic_pairs(10, seed=3, prefix="n")
    warm = first.path
    if case == "missing":
        warm = str(tmp_path / "gone")
    elif case == "no digests":
        warm = str(tmp_path / "old")
        shutil.copytree(first.path, warm, ignore=shutil.ignore_patterns(PAIRS_FILE))
    changes = {"replay off": {"replay_pairs": 0}, "small history": {"replay_pairs": 200}, "other shape": {"ensemble_size": 3},
               "other length": {"max_length": 64}}
    config = dataclasses.replace(config, **changes.get(case, {}))
    plan = replay_plan(pairs, pair_digests(pairs), None if case == "no warm heads" else warm, config,
                       identity="another-encoder" if case == "other encoder" else identity, dim=dim)
    assert plan.init is None and plan.pairs == pairs
    assert plan.record["warm_from"] is None and why in plan.record["why_cold"]


def test_a_full_tier_checkpoint_never_warms_a_fast_fit(learned):
    """The heads of a fine-tuned encoder sit on other embeddings: a fast fit from them stays cold."""
    _, store, config = learned
    full = fit(synthetic_pairs(200), dataclasses.replace(config, tier="full", full_batch_size=32), store=store, name="f1")
    pairs = synthetic_pairs(200) + synthetic_pairs(10, seed=3, prefix="n")
    result = fit(pairs, config, store=store, name="v2", warm_heads=full.path)
    assert result.manifest["replay"]["warm_from"] is None and result.manifest["heads"]["warm"] is False
    assert result.n_train == len(split_pairs(pairs, config.validation_fraction)[0])


def test_digests_name_content_not_order():
    a, b = PreferencePair("1", "p", "x", "y"), PreferencePair("2", "p", "x", "y")
    assert pair_digests([a, b])[0] == pair_digests([b, a])[1] != pair_digests([b, a])[0]
    assert pair_digests([dataclasses.replace(a, tie=True)])[0] != pair_digests([a])[0]


def test_a_fit_given_the_pairs_facts_is_the_fit_that_works_them_out(learned, tmp_path):
    """``facts`` (kept by a caller between fits) stand in for the digests and the split a fit works out per pair: the same
    pairs trained and validated, the same heads, the same digests kept; facts of other pairs are refused."""
    first, store, config = learned
    pairs = synthetic_pairs(200) + flipped(synthetic_pairs(150, seed=1, prefix="n"))
    facts = pair_facts(pairs, config.validation_fraction)
    train, validation = split_pairs(pairs, config.validation_fraction)
    assert facts.validation.tolist() == [p in validation for p in pairs] and np.array_equal(facts.digests, pair_digests(pairs))
    worked_out = fit(pairs, config, store=store, name="v2", baseline=first.path, warm_heads=first.path)
    given = fit(pairs, config, store=store, name="v3", baseline=first.path, warm_heads=first.path, facts=facts)
    assert given.manifest["replay"] == worked_out.manifest["replay"] and given.metrics == worked_out.metrics
    assert torch.equal(RewardEnsemble.load(given.path).w1, RewardEnsemble.load(worked_out.path).w1)
    assert np.array_equal(np.load(f"{given.path}/{PAIRS_FILE}"), np.load(f"{worked_out.path}/{PAIRS_FILE}"))
    cold = fit(pairs, config, store=store, name="v4", facts=facts)  # cold too: the split is the facts'
    assert (cold.n_train, cold.n_validation) == (len(train), len(validation))
    with pytest.raises(ValueError, match="facts of 349 pairs"):
        fit(pairs, config, store=store, name="v5", facts=pair_facts(pairs[1:], config.validation_fraction))
    with pytest.raises(ValueError, match="split at 0.2"):
        fit(pairs, config, store=store, name="v5", facts=pair_facts(pairs, 0.2))
    assert not store.path("reward", "v5").exists()
    with pytest.raises(ValueError, match="2 digests but 1 validation flags"):
        PairFacts(np.zeros(2, np.uint64), np.zeros(1, bool), 0.1)
