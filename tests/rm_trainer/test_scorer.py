import numpy as np
import pytest

from rm_trainer.config import FitConfig
from rm_trainer.embeddings import EncoderCache
from rm_trainer.scorer import RewardScorer
from rm_trainer.store import CheckpointStore
from rm_trainer.train import fit
from tests.rm_trainer.conftest import synthetic_pairs


@pytest.fixture(scope="module")
def checkpoints(tiny_backbone, tmp_path_factory):
    """Return the folders of two fast-tier versions and one full-tier version on the tiny backbone."""
    store = CheckpointStore(tmp_path_factory.mktemp("store"))
    pairs = synthetic_pairs(200)
    config = FitConfig(backbone=tiny_backbone, max_length=32, epochs=10, head_hidden=32, ensemble_size=4, device="cpu")
    full = FitConfig(**{**config.__dict__, "tier": "full", "full_learning_rate": 1e-3})
    return {
        "fast1": fit(pairs, config, store=store, name="fast1").path,
        "fast2": fit(pairs[:150], config, store=store, name="fast2").path,
        "full": fit(pairs, full, store=store, name="full").path,
    }


def test_score_member_rewards_and_embed(checkpoints):
    """A scorer gives one reward per response, K member rewards each, and pooled embeddings."""
    scorer = RewardScorer.load(checkpoints["fast1"], device="cpu")
    responses = ["good1 good2 good3 word1", "bad1 bad2 bad3 word1", "word2"]
    rewards = scorer.score("word5 word6", responses)
    members = scorer.member_rewards("word5 word6", responses)
    assert len(rewards) == 3 and members.shape == (4, 3)
    np.testing.assert_allclose(rewards, members.mean(0), rtol=1e-6)
    assert rewards[0] > rewards[1]
    assert scorer.embed("word5 word6", responses).shape == (3, 64)


def test_batch_matches_one_at_a_time(checkpoints):
    """Scoring many items in one batch gives what scoring each alone gives."""
    scorer = RewardScorer.load(checkpoints["fast1"], device="cpu", bf16=False)  # exact float32, even on AMX CPUs
    items = [("word1", ["good1", "bad1 bad2"]), ("word2 word3", ["word4"]), ("word5", [])]
    batched = scorer.score_batch(items)
    assert [len(r) for r in batched] == [2, 1, 0]
    for (prompt, responses), rewards in zip(items, batched):
        np.testing.assert_allclose(rewards, scorer.score(prompt, responses), rtol=1e-5, atol=1e-5)
    rewards, embeddings = scorer.rewards_and_embeddings_batch(items)
    assert rewards[0].shape == (4, 2) and embeddings[0].shape == (2, 64)
    assert scorer.score_batch([]) == []


def test_fast_versions_share_one_backbone(checkpoints):
    """Two fast-tier versions loaded through one EncoderCache share the backbone; a full version brings its own."""
    encoders = EncoderCache()
    first = RewardScorer.load(checkpoints["fast1"], device="cpu", encoders=encoders)
    second = RewardScorer.load(checkpoints["fast2"], device="cpu", encoders=encoders)
    full = RewardScorer.load(checkpoints["full"], device="cpu", encoders=encoders)
    assert first.encoder is second.encoder
    assert full.encoder is not first.encoder
    assert first.score("word1", ["good1"]) != second.score("word1", ["good1"])


def test_backbone_override(checkpoints, tiny_backbone, tmp_path):
    """A fast version finds its backbone at another path when told."""
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(tiny_backbone, moved)
    scorer = RewardScorer.load(checkpoints["fast1"], device="cpu", backbone=str(moved))
    reference = RewardScorer.load(checkpoints["fast1"], device="cpu")
    np.testing.assert_allclose(scorer.score("word1", ["good1"]), reference.score("word1", ["good1"]), rtol=1e-6)


def test_a_fast_scorer_with_the_embedding_cache_reuses_cached_vectors(checkpoints, tmp_path, monkeypatch):
    """With a cache, a fast-tier scorer embeds each text once; the scorer it came from is unchanged; a full one gets no cache."""
    from rm_trainer.embeddings import EmbeddingCache

    scorer = RewardScorer.load(checkpoints["fast1"], device="cpu", bf16=False)
    cache = EmbeddingCache(tmp_path, identity=scorer.encoder.identity, max_length=scorer.max_length)
    cached = scorer.with_embedding_cache(cache)
    assert cached.encoder is scorer.encoder and cached.ensemble is scorer.ensemble and scorer.embedding_cache is None
    items = [("word1", ["good1", "bad1 bad2"]), ("word2", ["word4"])]
    first = cached.score_batch(items)
    assert len(cache) == 3 and cache.shards_written == 1

    calls = []
    embed = scorer.encoder.embed
    monkeypatch.setattr(scorer.encoder, "embed", lambda *a, **k: calls.append(len(a[0])) or embed(*a, **k))
    for again, expected in zip(cached.score_batch(items), first):
        np.testing.assert_allclose(again, expected, rtol=1e-6)
    assert calls == []  # every vector came from the cache
    for plain, expected in zip(scorer.score_batch(items), first):  # the plain scorer still embeds
        np.testing.assert_allclose(plain, expected, rtol=1e-5, atol=1e-5)
    assert calls == [3]

    full = RewardScorer.load(checkpoints["full"], device="cpu")
    assert full.with_embedding_cache(cache).embedding_cache is None


def test_pair_probabilities_are_the_mean_gap_and_the_members_spread(checkpoints):
    """P(a beats b) is σ of the ensemble's mean reward gap, swapping the pair gives 1 − P, and the spread is the members' std."""
    scorer = RewardScorer.load(checkpoints["fast1"], device="cpu", bf16=False)
    prompt, good, bad = "word5 word6", "good1 good2 good3 word1", "bad1 bad2 bad3 word1"
    (p, spread), (q, spread_swapped) = scorer.pair_probabilities_batch([(prompt, good, bad), (prompt, bad, good)])
    members = scorer.member_rewards(prompt, [good, bad])
    gaps = members[:, 0] - members[:, 1]
    assert p == pytest.approx(1 / (1 + np.exp(-gaps.mean())), abs=1e-5) and p > 0.5
    assert q == pytest.approx(1 - p, abs=1e-5)
    assert spread == pytest.approx(float((1 / (1 + np.exp(-gaps))).std()), abs=1e-5) and spread == pytest.approx(spread_swapped, abs=1e-5)
    assert scorer.pair_probabilities_batch([]) == []
