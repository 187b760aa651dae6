"""The model store on disk: versioned checkpoints and the embedding cache under MODEL_STORE.

Part of the bridge: it imports ``rm_trainer`` inside its functions only, like the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from rm_trainer.store import CheckpointStore


def checkpoint_store() -> CheckpointStore:
    """Return the store of versioned checkpoints under MODEL_STORE."""
    from rm_trainer.store import CheckpointStore

    return CheckpointStore(settings.MODEL_STORE)


def checkpoint_name_free(kind: str, name: str) -> str:
    """Return ``name`` or, where a checkpoint of ``kind`` already holds it, the first free ``name-N``."""
    return checkpoint_store().name_free(kind, name)


def version_folder(path: str) -> Path:
    """Return the absolute folder of a version whose ``path`` is relative to MODEL_STORE."""
    return Path(settings.MODEL_STORE) / path


def embedding_cache_dir() -> str:
    """Return the folder of the embedding cache, shared by the fits and the batch scorers."""
    return str(Path(settings.MODEL_STORE) / "embeddings")


def embeddings_compact(*, manifest: dict, min_shards: int = 16) -> int:
    """Merge the embedding-cache shards of a fast-tier version's backbone once there are ``min_shards``
    (each fit adds one, of the texts it saw first); return how many were merged."""
    from rm_trainer.embeddings import EmbeddingCache

    identity = manifest.get("backbone_identity")
    if not identity:
        return 0
    cache = EmbeddingCache(embedding_cache_dir(), identity=identity, max_length=manifest["hyperparameters"]["max_length"])
    return cache.compact(min_shards=min_shards)


def checkpoint_partials() -> list[tuple[str, Path]]:
    """Return (version name, folder) of unfinished checkpoint writes in MODEL_STORE."""
    store = checkpoint_store()
    return [item for kind in ("reward", "policy") for item in store.partials(kind)]


def checkpoint_partial_remove(folder: Path) -> None:
    """Delete the folder of an unfinished checkpoint write."""
    checkpoint_store().remove_partial(folder)


def checkpoint_remove(path: str) -> bool:
    """Delete the checkpoint folder of a version whose ``path`` is "<kind>/<name>" under MODEL_STORE; return whether it existed."""
    kind, _, name = path.partition("/")
    if not name or "/" in name:
        raise ValueError(f"{path!r} is not a checkpoint folder of MODEL_STORE (expected kind/name)")
    return checkpoint_store().remove(kind, name)


def embeddings_prune(*, manifests: Iterable[dict], max_bytes: int, dry_run: bool = False) -> list[Path]:
    """Bound the embedding cache to ``max_bytes``, keeping the backbones of the fast-tier versions
    whose ``manifests`` are given longest; return the shards removed (or, with ``dry_run``, that would be)."""
    from rm_trainer.embeddings import cache_bound, cache_namespace

    keep = {cache_namespace(m["backbone_identity"], m["hyperparameters"]["max_length"]) for m in manifests if m.get("backbone_identity")}
    return cache_bound(embedding_cache_dir(), keep=keep, max_bytes=max_bytes, dry_run=dry_run)
