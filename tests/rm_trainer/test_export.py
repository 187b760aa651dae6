"""export_merged: a policy checkpoint's merged weights as a plain transformers folder, never half written."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rm_trainer.config import DPOConfig
from rm_trainer.data import PreferencePair
from rm_trainer.dpo import train_dpo
from rm_trainer.export import export_merged
from rm_trainer.generator import load_causal_lm, materialise_base_policy
from rm_trainer.store import CheckpointStore
from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

CONFIG = DPOConfig(
    beta=0.5, learning_rate=3e-2, epochs=1, batch_size=2, max_length=64, lora_r=4, lora_alpha=8,
    lora_dropout=0.0, device="cpu", bf16=False, system_prompt="",
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> CheckpointStore:
    """A store with a "full" base p0 and a LoRA version p1 on it."""
    source = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama().save_pretrained(source)
    tiny_tokenizer().save_pretrained(source)
    store = CheckpointStore(tmp_path_factory.mktemp("store"))
    materialise_base_policy(store, "p0", source)
    pairs = [PreferencePair(f"q{k}", f"Is {k} fine?", "yes", "no") for k in range(4)]
    train_dpo(store.path("policy", "p0"), pairs, CONFIG, store=store, name="p1")
    return store


def test_an_exported_lora_version_reloads_with_transformers_and_gives_the_merged_logits(store, tmp_path):
    """The export of a LoRA version loads with AutoModelForCausalLM/AutoTokenizer and matches the merged chain."""
    out = export_merged(store.path("policy", "p1"), tmp_path / "served")
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    assert not list(tmp_path.glob(".served.partial-*"))
    reloaded, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    merged, _ = load_causal_lm(store.path("policy", "p1"))
    base, _ = load_causal_lm(store.path("policy", "p0"))
    ids = torch.tensor([tokenizer("<|im_start|>user\nIs 3 fine?<|im_end|>\n")["input_ids"]])
    with torch.no_grad():
        expected, got, before = merged(ids).logits, reloaded(ids).logits, base(ids).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, before, atol=1e-4)  # the adapter was merged in, not dropped
    generation = json.loads((out / "generation_config.json").read_text())
    vocab = tokenizer.get_vocab()
    assert {vocab["<|im_end|>"], vocab["<|endoftext|>"], vocab["<|im_start|>"]} <= set(generation["eos_token_id"])


def test_an_empty_target_folder_is_used(store, tmp_path):
    """An existing empty folder is a valid target."""
    (tmp_path / "served").mkdir()
    out = export_merged(store.path("policy", "p0"), tmp_path / "served")
    assert (out / "model.safetensors").exists()


def test_a_target_that_is_not_empty_is_refused_and_left_as_it_was(store, tmp_path):
    """A non-empty OUT raises FileExistsError naming it; nothing is written there or beside it."""
    out = tmp_path / "served"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="served"):
        export_merged(store.path("policy", "p1"), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]
