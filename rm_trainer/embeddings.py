"""Embeddings of (prompt, response) pairs from a frozen encoder, and their shared disk cache.

The fast tier embeds each pair once: ``EmbeddingCache`` keys a vector by the sha256 of the
encoder's identity (a hash of its weights and vocabulary, so the same backbone installed at
different paths on different machines shares entries), ``max_length`` and the two texts.

Cache layout: ``<directory>/<namespace>/<uuid>.npz``, one namespace per (identity, max_length),
each shard holding ``keys`` (uint8 [n, 32], the sha256 digests) and ``vectors`` (float32 [n, dim]).
A writer saves a new shard under ``.tmp-<uuid>.npz`` and renames it; shards are never rewritten,
so any number of processes on any number of machines may share the folder. Readers load shards
as they appear and skip one they cannot read yet; two writers racing on the same text both
write it, which is harmless. Each write adds a shard, so call ``EmbeddingCache.compact`` now and
then (a periodic task): it merges the shards into one and deletes the old ones, which readers
tolerate. ``cache_bound`` keeps the folder under a size: it drops the namespaces nobody keeps,
then the shards read longest ago (a read sets a shard's access time); a dropped vector is
simply computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
import zipfile
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Callable, Collection, NamedTuple, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from rm_trainer.device import bf16_native, native_autocast, resolve_device
from rm_trainer.reward_model import POOLING, RewardModel, encode_pairs, load_tokenizer, pad_batch

OnBatch = Callable[[int, int], None]


class PairEncoder:
    """Embed (prompt, response) pairs with a frozen reward-model encoder."""

    def __init__(
        self,
        model: RewardModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        device: torch.device | str = "cpu",
        bf16: bool = True,
        batch_size: int = 64,
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.bf16 = bf16
        self.batch_size = batch_size
        self._identity: str | None = None

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, device: str = "auto", bf16: bool = True) -> PairEncoder:
        """Return the encoder and tokenizer saved in ``folder``."""
        return cls(RewardModel.from_pretrained(folder), load_tokenizer(folder), device=device, bf16=bf16)

    @property
    def dim(self) -> int:
        return self.model.embedding_dim

    @property
    def identity(self) -> str:
        """Return a sha256 of the pooling, the precision, the encoder weights and the vocabulary, computed once."""
        if self._identity is None:
            precision = "bf16" if self.bf16 and bf16_native(self.device) else "float32"
            digest = hashlib.sha256(f"{POOLING};{precision}".encode())
            for name, tensor in sorted(self.model.encoder.state_dict().items()):
                digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
            vocab = json.dumps(sorted(self.tokenizer.get_vocab().items()), ensure_ascii=False)
            digest.update(type(self.tokenizer).__name__.encode() + vocab.encode())
            self._identity = digest.hexdigest()
        return self._identity

    def embed(
        self, prompts: Sequence[str], responses: Sequence[str], *, max_length: int, on_batch: OnBatch | None = None
    ) -> np.ndarray:
        """Return float32 embeddings [n, dim]; pairs are batched by length to cut padding."""
        encodings = encode_pairs(self.tokenizer, prompts, responses, max_length)
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]["input_ids"]))
        out = np.empty((len(encodings), self.dim), dtype=np.float32)
        with torch.inference_mode(), native_autocast(self.device, bf16=self.bf16):
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                batch = pad_batch(self.tokenizer, [encodings[i] for i in index])
                pooled = self.model.embed(**{k: v.to(self.device) for k, v in batch.items()})
                out[index] = pooled.float().cpu().numpy()
                if on_batch is not None:
                    on_batch(start + len(index), len(order))
        return out


class EncoderCache:
    """Loaded encoders by (folder, device), shared by the scorers of one process; the caller owns it.

    Fast-tier versions on the same backbone then share one copy of it. The least recently used
    encoder is dropped beyond ``capacity``.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._encoders: OrderedDict[tuple[str, str, bool], PairEncoder] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: str | os.PathLike[str], *, device: str = "auto", bf16: bool = True) -> PairEncoder:
        """Return the encoder in ``folder``, loading it on first use."""
        resolved = resolve_device(device)
        key = (str(Path(folder).resolve()), str(resolved), bf16)
        with self._lock:
            if key in self._encoders:
                self._encoders.move_to_end(key)
                return self._encoders[key]
            encoder = PairEncoder.load(folder, device=str(resolved), bf16=bf16)
            self._encoders[key] = encoder
            while len(self._encoders) > self.capacity:
                self._encoders.popitem(last=False)
            return encoder


class EmbeddingCache:
    """Embeddings of one encoder at one ``max_length``: an index in memory, the vectors in shards.

    The index holds a key's shard and row (about 200 bytes a text); vectors are read from their
    shards when asked for, so a long-lived process does not hold every vector ever cached. With
    ``directory=None`` the vectors stay in memory instead (one process, one run).
    """

    def __init__(self, directory: str | os.PathLike[str] | None, *, identity: str, max_length: int) -> None:
        self.identity = identity
        self.max_length = max_length
        self.folder = None if directory is None else Path(directory) / cache_namespace(identity, max_length)
        self._where: dict[bytes, tuple[str, int]] = {}  # key -> (shard name, row)
        self._memory: dict[bytes, np.ndarray] = {}  # only without a directory
        self._indexed: set[str] = set()
        self.shards_written = 0

    def key(self, prompt: str, response: str) -> bytes:
        """Return the sha256 digest that names the embedding of this pair."""
        parts = (self.identity, str(self.max_length), prompt, response)
        return hashlib.sha256("".join(f"{len(p)}:{p}" for p in parts).encode("utf-8")).digest()

    def __len__(self) -> int:
        return len(self._where) + len(self._memory)

    def __contains__(self, key: bytes) -> bool:
        return key in self._where or key in self._memory

    def refresh(self) -> int:
        """Index the shards that appeared since the last call and forget vanished ones; return how many were indexed."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        names = {p.name for p in self.folder.glob("*.npz") if not p.name.startswith(".")}
        self._forget(self._indexed - names)
        indexed = 0
        for name in sorted(names - self._indexed):
            try:
                with np.load(self.folder / name) as shard:
                    keys = shard["keys"]
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
                continue  # vanished, or unreadable for now: try again on the next refresh
            for row, key in enumerate(keys):
                self._where.setdefault(key.tobytes(), (name, row))
            self._indexed.add(name)
            indexed += 1
        return indexed

    def lookup(self, keys: Collection[bytes], *, retry: bool = True) -> dict[bytes, np.ndarray]:
        """Return the cached vectors among ``keys``, reading each shard needed once."""
        found = {key: self._memory[key] for key in keys if key in self._memory}
        wanted: dict[str, list[tuple[bytes, int]]] = defaultdict(list)
        for key in keys:
            if key in self._where:
                name, row = self._where[key]
                wanted[name].append((key, row))
        vanished = []
        for name, rows in wanted.items():
            try:
                with np.load(self.folder / name) as shard:
                    vectors = shard["vectors"]
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
                vanished.append(name)
                continue
            found.update((key, vectors[row]) for key, row in rows)
            _mark_read(self.folder / name)
        if vanished and retry:  # compacted away: its rows live on in a newer shard
            self._forget(set(vanished))
            self.refresh()
            found.update(self.lookup([key for key in keys if key not in found], retry=False))
        return found

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Add the vectors: as one new shard with a directory, in memory without."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.folder is None:
            self._memory.update(zip(keys, vectors))
        elif len(keys):
            name = self._write_shard(keys, vectors)
            self._where.update((key, (name, row)) for row, key in enumerate(keys))
            self._indexed.add(name)

    def compact(self, min_shards: int = 2) -> int:
        """Merge every shard into one new shard once there are ``min_shards``; return how many were merged.

        Safe beside other readers and writers: a reader that loses a shard re-indexes and finds
        the merged one; a shard written meanwhile is left alone.
        """
        self.refresh()
        names = sorted(self._indexed)
        if len(names) < max(2, min_shards):
            return 0
        merged: dict[bytes, np.ndarray] = {}
        for name in names:
            with np.load(self.folder / name) as shard:
                for key, vector in zip(shard["keys"], shard["vectors"]):
                    merged.setdefault(key.tobytes(), vector)
        self.put(list(merged), np.stack(list(merged.values())))
        for name in names:
            (self.folder / name).unlink(missing_ok=True)
        self._forget(set(names))
        return len(names)

    def _write_shard(self, keys: Sequence[bytes], vectors: np.ndarray) -> str:
        """Write a new shard under a temporary name, rename it into place, and return its name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.npz"
        tmp = self.folder / f".tmp-{name}"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32), vectors=vectors)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.shards_written += 1
        return name

    def _forget(self, names: set[str]) -> None:
        if names:
            self._where = {key: where for key, where in self._where.items() if where[0] not in names}
            self._indexed -= names


def cache_namespace(identity: str, max_length: int) -> str:
    """Return the sub-folder of the cache that holds one encoder's vectors at ``max_length``."""
    return hashlib.sha256(f"{identity}:{max_length}".encode()).hexdigest()[:24]


def cache_bound(
    directory: str | os.PathLike[str], *, keep: Collection[str], max_bytes: int, grace_seconds: float = 3600.0,
    dry_run: bool = False,
) -> list[Path]:
    """Delete shards until the cache in ``directory`` holds at most ``max_bytes``; return the shards deleted.

    Namespaces outside ``keep`` (see ``cache_namespace``) go first, whole, except the shards
    written in the last ``grace_seconds``: a fit on a new backbone may be filling them. Then
    the shards read longest ago go, across the kept namespaces, until the rest fit. Readers
    tolerate a vanished shard, so this is safe beside them.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    now = time.time()
    shards = [shard for namespace in root.iterdir() if namespace.is_dir() for shard in _shards(namespace, kept=namespace.name in keep)]
    doomed = [s for s in shards if not s.kept and now - s.written_at > grace_seconds]
    rest = sorted((s for s in shards if s not in doomed), key=lambda s: s.read_at)
    total = sum(s.size for s in rest)
    for shard in rest:
        if total <= max_bytes:
            break
        doomed.append(shard)
        total -= shard.size
    if not dry_run:
        for shard in doomed:
            shard.path.unlink(missing_ok=True)
    return [s.path for s in doomed]


class _Shard(NamedTuple):
    path: Path
    size: int
    written_at: float
    read_at: float  # the last read, or the write when never read
    kept: bool


def _shards(namespace: Path, *, kept: bool) -> list[_Shard]:
    found = []
    for path in namespace.glob("*.npz"):
        if path.name.startswith("."):
            continue  # a shard being written
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # compacted away meanwhile
        found.append(_Shard(path, st.st_size, st.st_mtime, max(st.st_atime, st.st_mtime), kept))
    return found


def _mark_read(path: Path) -> None:
    """Set the shard's access time to now (mounts with noatime or relatime would not), its content untouched."""
    try:
        os.utime(path, (time.time(), path.stat().st_mtime))
    except OSError:
        pass  # a read-only cache, or the shard was compacted away meanwhile


def embed_cached(
    encoder: PairEncoder,
    cache: EmbeddingCache,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    on_batch: OnBatch | None = None,
) -> np.ndarray:
    """Return embeddings [n, dim] of the pairs, running the encoder only on those not cached."""
    if cache.identity != encoder.identity:
        raise ValueError("the embedding cache belongs to another encoder")
    cache.refresh()
    keys = [cache.key(p, r) for p, r in zip(prompts, responses)]
    found = cache.lookup(set(keys))
    missing: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        if key not in found and key not in missing:
            missing[key] = i
    if missing:
        index = list(missing.values())
        vectors = encoder.embed(
            [prompts[i] for i in index], [responses[i] for i in index], max_length=cache.max_length, on_batch=on_batch
        )
        cache.put(list(missing), vectors)
        found.update(zip(missing, vectors))
    if not keys:
        return np.empty((0, encoder.dim), dtype=np.float32)
    return np.stack([found[key] for key in keys])
