"""Tiny models built from config, and a learnable synthetic preference task."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import BertConfig, BertTokenizer

from rm_trainer.data import PreferencePair
from rm_trainer.reward_model import RewardModel

GOOD = [f"good{i}" for i in range(8)]
BAD = [f"bad{i}" for i in range(8)]
NEUTRAL = [f"word{i}" for i in range(24)]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_tokenizer() -> BertTokenizer:
    """Return a word-level BERT tokenizer over the synthetic vocabulary."""
    words = SPECIAL + GOOD + BAD + NEUTRAL
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)})


def tiny_config() -> BertConfig:
    """Return the config of a 2-layer BERT with hidden size 32."""
    return BertConfig(
        vocab_size=len(SPECIAL + GOOD + BAD + NEUTRAL), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
    )


def synthetic_pairs(n: int, seed: int = 0, prefix: str = "p") -> list[PreferencePair]:
    """Return pairs where the chosen response holds more "good" and fewer "bad" words."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        prompt = " ".join(rng.choices(NEUTRAL, k=rng.randint(3, 8)))
        a_good, b_good = rng.sample(range(4), 2)
        a = rng.choices(NEUTRAL, k=rng.randint(2, 5)) + rng.choices(GOOD, k=a_good) + rng.choices(BAD, k=3 - a_good)
        b = rng.choices(NEUTRAL, k=rng.randint(2, 5)) + rng.choices(GOOD, k=b_good) + rng.choices(BAD, k=3 - b_good)
        rng.shuffle(a)
        rng.shuffle(b)
        chosen, rejected = (a, b) if a_good > b_good else (b, a)
        pairs.append(PreferencePair(f"{prefix}{i}", prompt, " ".join(chosen), " ".join(rejected)))
    return pairs


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """Return a folder holding a randomly initialised tiny BERT encoder and its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    RewardModel.from_config(tiny_config()).encoder.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Run torch on one thread: tiny models gain nothing from more, and shared machines lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
