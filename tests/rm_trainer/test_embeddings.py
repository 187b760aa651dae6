import os
import shutil
import time

import numpy as np
import pytest

from rm_trainer.embeddings import EmbeddingCache, EncoderCache, PairEncoder, cache_bound, cache_namespace, embed_cached

PROMPTS = ["word1 word2", "word3", "word4 word5 word6 word7 word8"]
RESPONSES = ["good1", "bad1 bad2 word9", "good2 word10"]


def counting(encoder: PairEncoder) -> list[int]:
    """Count the encoder's forward passes (batch sizes) from now on."""
    calls = []
    embed = encoder.model.embed

    def counted(**batch):
        calls.append(len(batch["input_ids"]))
        return embed(**batch)

    encoder.model.embed = counted
    return calls


def test_embed_keeps_input_order(tiny_backbone):
    """Batching by length does not reorder results: each row matches the pair embedded alone."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu", bf16=False)  # exact float32 sums, even on AMX CPUs
    encoder.batch_size = 2
    together = encoder.embed(PROMPTS, RESPONSES, max_length=32)
    assert together.shape == (3, 64) and together.dtype == np.float32
    for i in range(3):
        alone = encoder.embed(PROMPTS[i : i + 1], RESPONSES[i : i + 1], max_length=32)
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-5, atol=1e-5)


def test_cache_hits_do_not_re_embed(tiny_backbone, tmp_path):
    """A second request for the same pairs runs no encoder pass; a new pair runs one."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    calls = counting(encoder)
    cache = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    first = embed_cached(encoder, cache, PROMPTS, RESPONSES)
    assert sum(calls) == 3
    again = embed_cached(encoder, cache, PROMPTS, RESPONSES)
    assert sum(calls) == 3
    np.testing.assert_array_equal(first, again)
    embed_cached(encoder, cache, PROMPTS + ["word1"], RESPONSES + ["good7"])
    assert sum(calls) == 4


def test_two_caches_in_one_folder_share_shards(tiny_backbone, tmp_path):
    """A cache sees the shards another cache (another process, another machine) wrote."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    writer = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    reader = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    reader.refresh()
    expected = embed_cached(encoder, writer, PROMPTS, RESPONSES)
    calls = counting(encoder)
    np.testing.assert_array_equal(embed_cached(encoder, reader, PROMPTS, RESPONSES), expected)
    assert calls == []


def test_shards_are_written_once_and_never_rewritten(tiny_backbone, tmp_path):
    """Each write adds a new shard and leaves the earlier ones byte for byte; no temporary file stays."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    cache = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    embed_cached(encoder, cache, PROMPTS[:1], RESPONSES[:1])
    (first,) = list(cache.folder.iterdir())
    content = first.read_bytes()
    embed_cached(encoder, cache, PROMPTS, RESPONSES)
    shards = sorted(cache.folder.iterdir())
    assert len(shards) == 2 and first.read_bytes() == content
    assert not [p for p in shards if p.name.startswith(".")]


def test_refresh_skips_unreadable_and_temporary_shards(tiny_backbone, tmp_path):
    """A shard being written or truncated is skipped now and read once it is whole."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    writer = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    embed_cached(encoder, writer, PROMPTS, RESPONSES)
    (shard,) = list(writer.folder.iterdir())
    shutil.copy(shard, writer.folder / ".tmp-partial.npz")
    whole = shard.read_bytes()
    shard.write_bytes(whole[: len(whole) // 2])
    reader = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    assert reader.refresh() == 0 and len(reader) == 0
    shard.write_bytes(whole)
    assert reader.refresh() == 1 and len(reader) == 3


def test_the_key_depends_on_encoder_length_and_text():
    """Another encoder, max_length, prompt or response gives another key."""
    base = EmbeddingCache(None, identity="a", max_length=32)
    key = base.key("p", "r")
    assert key != EmbeddingCache(None, identity="b", max_length=32).key("p", "r")
    assert key != EmbeddingCache(None, identity="a", max_length=64).key("p", "r")
    assert key != base.key("p", "r2") and key != base.key("pr", "") and len(key) == 32


def test_identity_follows_the_weights_not_the_path(tiny_backbone, tmp_path):
    """The same weights at another path have the same identity; other weights do not."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_backbone, copy)
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    assert PairEncoder.load(copy, device="cpu").identity == encoder.identity
    other = PairEncoder.load(copy, device="cpu")
    other.model.encoder.embeddings.word_embeddings.weight.data[5, 0] += 1.0
    other._identity = None
    assert other.identity != encoder.identity


def test_a_cache_refuses_another_encoder(tiny_backbone):
    """Embeddings cached for one encoder are never served for another."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    with pytest.raises(ValueError):
        embed_cached(encoder, EmbeddingCache(None, identity="not-this-one", max_length=32), PROMPTS, RESPONSES)


def test_encoder_cache_loads_a_folder_once(tiny_backbone):
    """Asking twice for one folder returns the same loaded encoder."""
    encoders = EncoderCache()
    assert encoders.get(tiny_backbone, device="cpu") is encoders.get(tiny_backbone, device="cpu")


def test_compaction_merges_shards_and_readers_follow(tiny_backbone, tmp_path):
    """Compaction leaves one shard; a reader that indexed the old shards finds the vectors without re-embedding."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    writer = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    expected = np.concatenate([embed_cached(encoder, writer, PROMPTS[i : i + 1], RESPONSES[i : i + 1]) for i in range(3)])
    reader = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    assert reader.refresh() == 3
    assert EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32).compact(min_shards=4) == 0  # too few yet
    assert EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32).compact() == 3
    assert len(list(writer.folder.iterdir())) == 1
    calls = counting(encoder)
    np.testing.assert_array_equal(embed_cached(encoder, reader, PROMPTS, RESPONSES), expected)
    assert calls == [] and len(reader) == 3


def test_memory_only_cache(tiny_backbone):
    """Without a directory the cache still saves repeated work within one process."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    cache = EmbeddingCache(None, identity=encoder.identity, max_length=32)
    first = embed_cached(encoder, cache, PROMPTS, RESPONSES)
    calls = counting(encoder)
    np.testing.assert_array_equal(embed_cached(encoder, cache, PROMPTS, RESPONSES), first)
    assert calls == [] and len(cache) == 3


def _age(path, *, written: float, read: float) -> None:
    """Pretend ``path`` was written ``written`` and last read ``read`` seconds ago."""
    now = time.time()
    os.utime(path, (now - read, now - written))


def one_shard_per_pair(encoder, cache) -> list:
    """Embed each pair on its own, so each lands in its own shard; return the shards in pair order."""
    shards = []
    for i in range(3):
        embed_cached(encoder, cache, PROMPTS[i : i + 1], RESPONSES[i : i + 1])
        shards.append(next(p for p in cache.folder.iterdir() if p not in shards))
    return shards


def test_a_lookup_marks_the_shards_it_read(tiny_backbone, tmp_path):
    """Reading a vector sets its shard's access time, leaving its bytes and write time alone."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    cache = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    shards = one_shard_per_pair(encoder, cache)
    reader = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    reader.refresh()
    before = shards[1].read_bytes()
    # Read after written and within a day: a relatime mount would not update it on its own.
    _age(shards[1], written=7200, read=3600)
    aged = shards[1].stat()
    reader.lookup([reader.key(PROMPTS[1], RESPONSES[1])])
    after = shards[1].stat()
    assert after.st_atime > aged.st_atime + 1800 and after.st_mtime == aged.st_mtime
    assert shards[1].read_bytes() == before


def test_bound_drops_unused_namespaces_then_the_least_recently_read_shards(tiny_backbone, tmp_path):
    """Shards of an encoder nobody keeps go first; then the oldest-read, until the rest fit."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    kept = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    shards = one_shard_per_pair(encoder, kept)
    unused = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=16)  # another namespace
    embed_cached(encoder, unused, PROMPTS, RESPONSES)
    (old,) = list(unused.folder.iterdir())
    _age(old, written=7200, read=7200)
    for shard, read in zip(shards, (100, 300, 200)):
        _age(shard, written=7200, read=read)
    size = shards[0].stat().st_size
    keep = {cache_namespace(encoder.identity, 32)}
    assert kept.folder.name in keep and unused.folder.name not in keep

    assert cache_bound(tmp_path, keep=keep, max_bytes=2 * size + size // 2, dry_run=True) == [old, shards[1]]
    assert old.exists() and all(p.exists() for p in shards)
    assert cache_bound(tmp_path, keep=keep, max_bytes=2 * size + size // 2) == [old, shards[1]]
    assert not old.exists() and [p.exists() for p in shards] == [True, False, True]

    calls = counting(encoder)
    embed_cached(encoder, kept, PROMPTS, RESPONSES)  # only a cache: the dropped vector is computed again
    assert calls == [1]


def test_bound_spares_fresh_shards_of_a_namespace_not_yet_kept(tiny_backbone, tmp_path):
    """A fit on a new backbone fills a namespace no version names yet; its recent shards stay."""
    encoder = PairEncoder.load(tiny_backbone, device="cpu")
    cache = EmbeddingCache(tmp_path, identity=encoder.identity, max_length=32)
    embed_cached(encoder, cache, PROMPTS, RESPONSES)
    (shard,) = list(cache.folder.iterdir())
    _age(shard, written=60, read=60)
    assert cache_bound(tmp_path, keep=set(), max_bytes=10**9, grace_seconds=3600) == []
    assert cache_bound(tmp_path, keep=set(), max_bytes=0, grace_seconds=3600) == [shard]
