import json
import os

import pytest

from rm_trainer.store import CheckpointStore, read_manifest


def test_write_renames_a_complete_folder_and_makes_it_read_only(tmp_path):
    store = CheckpointStore(tmp_path)
    path = store.write("reward", "rm-1", {"tier": "fast"}, lambda folder: (folder / "heads.pt").write_bytes(b"weights"))
    assert path == tmp_path / "reward" / "rm-1"
    assert read_manifest(path) == {"kind": "reward", "name": "rm-1", "tier": "fast"}
    assert store.names("reward") == ["rm-1"] and store.manifest("reward", "rm-1")["tier"] == "fast"
    assert not os.access(path / "heads.pt", os.W_OK) or os.geteuid() == 0  # root may write anyway
    assert not (path / "heads.pt").stat().st_mode & 0o222


def test_an_existing_version_is_never_overwritten(tmp_path):
    store = CheckpointStore(tmp_path)
    store.write("reward", "rm-1", {}, lambda folder: None)
    with pytest.raises(FileExistsError):
        store.write("reward", "rm-1", {}, lambda folder: None)


def test_name_free_is_the_name_or_the_first_numbered_one_no_version_holds(tmp_path):
    store = CheckpointStore(tmp_path)
    assert store.name_free("reward", "rm-00001") == "rm-00001"
    store.write("reward", "rm-00001", {}, lambda folder: None)
    store.write("reward", "rm-00001-2", {}, lambda folder: None)
    assert store.name_free("reward", "rm-00001") == "rm-00001-3"
    assert store.name_free("policy", "rm-00001") == "rm-00001"  # another kind's folder


def test_a_failing_write_leaves_nothing(tmp_path):
    store = CheckpointStore(tmp_path)

    def broken(folder):
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.write("reward", "rm-2", {}, broken)
    assert list((tmp_path / "reward").iterdir()) == []
    assert store.names("reward") == []


def test_partials_of_dead_writers_can_be_found_and_removed(tmp_path):
    store = CheckpointStore(tmp_path)
    (tmp_path / "policy").mkdir()
    left = tmp_path / "policy" / ".tmp-policy-00007-1a2b3c4d"
    left.mkdir()
    (tmp_path / "policy" / "policy-00003").mkdir()  # no manifest: not a complete version either
    assert store.partials("policy") == [("policy-00007", left)]
    assert store.names("policy") == []
    store.remove_partial(left)
    assert store.partials("policy") == []
    with pytest.raises(ValueError):
        store.remove_partial(tmp_path / "policy")


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", ".."])
def test_invalid_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError):
        CheckpointStore(tmp_path).path("reward", name)


def test_manifest_is_json_with_kind_and_name(tmp_path):
    path = CheckpointStore(tmp_path).write("policy", "p-1", {"format": "full"}, lambda folder: None)
    assert json.loads((path / "manifest.json").read_text())["name"] == "p-1"


def test_remove_deletes_a_read_only_version_and_leaves_the_others(tmp_path):
    """A removed version is gone from the store and its folder; its neighbours stay whole."""
    store = CheckpointStore(tmp_path)
    for name in ("v1", "v2"):
        store.write("reward", name, {}, lambda tmp: (tmp / "sub").mkdir() or (tmp / "sub" / "w.bin").write_bytes(b"x"))
    assert store.remove("reward", "v1") is True
    assert store.names("reward") == ["v2"] and not store.path("reward", "v1").exists()
    assert [p.name for p in (tmp_path / "reward").iterdir()] == ["v2"]
    assert store.remove("reward", "v1") is False
    assert (store.path("reward", "v2") / "sub" / "w.bin").read_bytes() == b"x"


def test_remove_finishes_a_removal_cut_short(tmp_path):
    """A ``.removing-`` folder left by an interrupted removal is cleared by the next one."""
    store = CheckpointStore(tmp_path)
    store.write("policy", "p1", {}, lambda tmp: (tmp / "w.bin").write_bytes(b"x"))
    store.path("policy", "p1").rename(tmp_path / "policy" / ".removing-p1-0000")
    assert store.remove("policy", "p2") is False
    assert list((tmp_path / "policy").iterdir()) == []
