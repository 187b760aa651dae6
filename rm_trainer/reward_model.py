"""The reward model: a transformers encoder, mean pooling over tokens and a scalar head.

A (prompt, response) pair is encoded as a text pair. When it is too long, the start of the
prompt is cut first (the latest turn matters most), so the response survives; a response too
long to fit keeps its head and at least ``RESPONSE_SHARE`` of the token budget.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

HEAD_FILE = "reward_head.pt"
RESPONSE_SHARE = 0.75


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Return the mean of the token states that the mask keeps, in float32."""
    mask = attention_mask.unsqueeze(-1).to(torch.float32)
    return (hidden.float() * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class RewardModel(nn.Module):
    """Score a tokenized (prompt, response) pair with one number."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, 1)

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> RewardModel:
        """Return a randomly initialised model with the encoder that ``config`` describes."""
        return cls(AutoModel.from_config(config))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> RewardModel:
        """Return the model saved in ``folder``: a bare encoder, or one saved by ``save_pretrained``."""
        config = AutoConfig.from_pretrained(folder)
        model = cls(AutoModel.from_pretrained(folder, config=config, dtype=torch.float32))
        head = Path(folder) / HEAD_FILE
        if head.exists():
            model.head.load_state_dict(torch.load(head, map_location="cpu", weights_only=True))
        return model

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        """Write the encoder (transformers format) and the head into ``folder``."""
        self.encoder.save_pretrained(folder)
        torch.save(self.head.state_dict(), Path(folder) / HEAD_FILE)

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    def embed(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Return the mean-pooled encoder states, shape [batch, hidden]."""
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Return one reward per sequence, shape [batch], in float32."""
        pooled = self.embed(input_ids, attention_mask, token_type_ids)
        return self.head(pooled.to(self.head.weight.dtype)).squeeze(-1).float()


def load_tokenizer(folder: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """Return the tokenizer saved in ``folder``."""
    return AutoTokenizer.from_pretrained(folder)


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str], max_length: int
) -> list[dict[str, list[int]]]:
    """Return unpadded encodings of (prompt, response) text pairs of at most ``max_length`` tokens."""
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    if budget < 2:
        raise ValueError(f"max_length {max_length} leaves no room for text")
    if not prompts:
        return []
    prompt_offsets = tokenizer(list(prompts), add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    response_offsets = tokenizer(list(responses), add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cut_prompts, cut_responses = [], []
    for prompt, response, p_offsets, r_offsets in zip(prompts, responses, prompt_offsets, response_offsets):
        response_limit = max(int(budget * RESPONSE_SHARE), budget - len(p_offsets))
        response = _keep_head(response, r_offsets, response_limit)
        prompt = _keep_tail(prompt, p_offsets, budget - min(len(r_offsets), response_limit))
        cut_prompts.append(prompt)
        cut_responses.append(response)
    # Re-tokenizing cut text can shift a boundary by a token; truncation is the safety net.
    batch = tokenizer(cut_prompts, cut_responses, truncation="longest_first", max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch]
    return [{k: batch[k][i] for k in keys} for i in range(len(cut_prompts))]


def pad_batch(tokenizer: PreTrainedTokenizerBase, encodings: Sequence[dict[str, list[int]]]) -> dict[str, Tensor]:
    """Return the encodings padded into one batch of tensors."""
    return dict(tokenizer.pad(list(encodings), return_tensors="pt"))


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str], max_length: int
) -> dict[str, Tensor]:
    """Return a padded batch of (prompt, response) pairs, ready for ``RewardModel``."""
    return pad_batch(tokenizer, encode_pairs(tokenizer, prompts, responses, max_length))


def _keep_head(text: str, offsets: Sequence[tuple[int, int]], limit: int) -> str:
    """Return the text of the first ``limit`` tokens."""
    if len(offsets) <= limit:
        return text
    return text[: offsets[limit - 1][1]] if limit > 0 else ""


def _keep_tail(text: str, offsets: Sequence[tuple[int, int]], limit: int) -> str:
    """Return the text of the last ``limit`` tokens."""
    if len(offsets) <= limit:
        return text
    return text[offsets[-limit][0]:] if limit > 0 else ""
