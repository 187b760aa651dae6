"""Versioned, immutable checkpoint folders.

A version is written under a temporary name inside its kind's folder and renamed into place
once complete, so a reader sees either nothing or the whole folder. After the rename its files
are made read-only; a version is never modified again.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any, Callable

MANIFEST = "manifest.json"


class CheckpointStore:
    """A folder of checkpoint versions, one sub-folder per kind ("reward", "policy", ...)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, kind: str, name: str) -> Path:
        """Return the folder of version ``name`` of ``kind`` (which may not exist)."""
        _check_name(kind)
        _check_name(name)
        return self.root / kind / name

    def write(self, kind: str, name: str, manifest: dict[str, Any], write: Callable[[Path], None]) -> Path:
        """Create version ``name``: ``write`` fills a temporary folder, which is then renamed.

        Raise FileExistsError if the version exists; a failed ``write`` leaves nothing behind.
        """
        final = self.path(kind, name)
        if final.exists():
            raise FileExistsError(f"checkpoint {kind}/{name} already exists")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write(tmp)
            manifest_path = tmp / MANIFEST
            manifest_path.write_text(json.dumps({"kind": kind, "name": name, **manifest}, indent=2, sort_keys=True, default=str))
            for file in tmp.rglob("*"):
                if file.is_file():
                    _fsync(file)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _make_read_only(final)
        return final

    def name_free(self, kind: str, name: str) -> str:
        """Return ``name``, or ``name-2``, ``name-3``, ... : the first that no complete version of ``kind`` holds.

        A version's name comes from its run, and a run's number from a database: a database
        recreated or restored beside this store, or a write whose run was never recorded, can
        have left a version under the name the next run would take.
        """
        candidate, n = name, 1
        while self.path(kind, candidate).exists():
            n += 1
            candidate = f"{name}-{n}"
        return candidate

    def manifest(self, kind: str, name: str) -> dict[str, Any]:
        """Return the manifest of an existing version."""
        return read_manifest(self.path(kind, name))

    def names(self, kind: str) -> list[str]:
        """Return the complete versions of ``kind``, sorted by name."""
        folder = self.root / kind
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists())

    def partials(self, kind: str) -> list[tuple[str, Path]]:
        """Return (version name, folder) of the temporary folders of unfinished writes of ``kind``.

        A writer that died leaves one behind; so does a writer still at work (on this machine
        or another sharing the store), so only the caller can tell which may go.
        """
        folder = self.root / kind
        if not folder.is_dir():
            return []
        found = []
        for p in folder.iterdir():
            if p.name.startswith(".tmp-") and p.is_dir():
                found.append((p.name[len(".tmp-"):].rsplit("-", 1)[0], p))
        return sorted(found)

    def remove(self, kind: str, name: str) -> bool:
        """Delete version ``name`` of ``kind``; return whether it existed.

        The folder is first renamed out of sight (readers then see the whole version or none of
        it), made writable again (versions are read-only) and deleted. A removal cut short
        leaves a ``.removing-`` folder, which the next removal of that kind clears.
        """
        final = self.path(kind, name)
        try:
            os.rename(final, final.parent / f".removing-{name}-{uuid.uuid4().hex[:8]}")
            existed = True
        except FileNotFoundError:
            existed = False  # never there, or another process is removing it
        for doomed in (self.root / kind).glob(".removing-*"):
            try:
                _make_writable(doomed)
            except FileNotFoundError:
                continue  # another process is removing it
            shutil.rmtree(doomed, ignore_errors=True)
        return existed

    def remove_partial(self, folder: Path) -> None:
        """Delete one temporary folder returned by ``partials``."""
        if not folder.name.startswith(".tmp-") or folder.parent.parent != self.root:
            raise ValueError(f"{folder} is not a temporary folder of this store")
        shutil.rmtree(folder, ignore_errors=True)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the manifest of the checkpoint in ``folder``."""
    return json.loads((Path(folder) / MANIFEST).read_text())


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or name in ("..",):
        raise ValueError(f"invalid checkpoint name {name!r}")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _make_writable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _make_read_only(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
