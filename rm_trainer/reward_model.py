"""The reward model: a transformers encoder, mean pooling over tokens and a scalar head.

A (prompt, response) pair is encoded as a text pair. When it is too long, the start of the
prompt is cut first (the latest turn matters most), so the response survives; a response too
long to fit keeps its head and at least ``RESPONSE_SHARE`` of the token budget.

The pooled embedding averages the outputs of every transformer layer (a frozen encoder's
middle layers carry much of what a reward needs: on a dev split of HH-RLHF this beat the last
layer alone clearly), then takes [mean over all tokens, mean over the response's tokens], 2 x
hidden wide: the first half keeps the prompt as context, the second keeps a long prompt from
drowning out the response, which is what differs between the two sides of a comparison.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

HEAD_FILE = "reward_head.pt"
POOLING = "layer-mean;token-mean+response-mean"  # names the embedding; part of the embedding cache's key
RESPONSE_SHARE = 0.75


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Return the mean of the token states that the mask keeps, in float32."""
    mask = mask.unsqueeze(-1).to(torch.float32)
    return (hidden.float() * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class RewardModel(nn.Module):
    """Score a tokenized (prompt, response) pair with one number."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(self.embedding_dim, 1)

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
    def embedding_dim(self) -> int:
        return 2 * self.encoder.config.hidden_size

    def embed(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        response_mask: Tensor | None = None,
    ) -> Tensor:
        """Return [mean of all tokens, mean of response tokens] of the layer-mean states, float32 [batch, 2 x hidden].

        Without ``response_mask`` both halves pool every token.
        """
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **kwargs).hidden_states
        hidden = sum(h.float() for h in states[1:]) / (len(states) - 1)  # states[0] is the token embeddings
        response_mask = attention_mask if response_mask is None else response_mask * attention_mask
        return torch.cat([mean_pool(hidden, attention_mask), mean_pool(hidden, response_mask)], -1)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        response_mask: Tensor | None = None,
    ) -> Tensor:
        """Return one reward per sequence, shape [batch], in float32."""
        pooled = self.embed(input_ids, attention_mask, token_type_ids, response_mask)
        return self.head(pooled.to(self.head.weight.dtype)).squeeze(-1).float()


def load_tokenizer(folder: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """Return the tokenizer saved in ``folder``."""
    return AutoTokenizer.from_pretrained(folder)


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str], max_length: int
) -> list[dict[str, list[int]]]:
    """Return unpadded encodings of (prompt, response) text pairs of at most ``max_length`` tokens.

    Each holds the tokenizer's fields and ``response_mask`` (1 on the response's own tokens).
    """
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    if budget < 2:
        raise ValueError(f"max_length {max_length} leaves no room for text")
    if not prompts:
        return []
    prompt_offsets = _offsets(tokenizer, prompts)
    response_offsets = _offsets(tokenizer, responses)
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
    encodings = []
    for i in range(len(cut_prompts)):
        encoding = {k: batch[k][i] for k in keys}
        encoding["response_mask"] = [int(s == 1) for s in batch.sequence_ids(i)]
        encodings.append(encoding)
    return encodings


def pad_batch(tokenizer: PreTrainedTokenizerBase, encodings: Sequence[dict[str, list[int]]]) -> dict[str, Tensor]:
    """Return the encodings padded into one batch of tensors."""
    batch = dict(tokenizer.pad([{k: v for k, v in e.items() if k != "response_mask"} for e in encodings], return_tensors="pt"))
    width = batch["input_ids"].shape[1]
    response_mask = torch.zeros(len(encodings), width, dtype=torch.long)
    for i, encoding in enumerate(encodings):
        mask = torch.tensor(encoding["response_mask"], dtype=torch.long)
        if tokenizer.padding_side == "left":
            response_mask[i, width - len(mask) :] = mask
        else:
            response_mask[i, : len(mask)] = mask
    batch["response_mask"] = response_mask
    return batch


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str], max_length: int
) -> dict[str, Tensor]:
    """Return a padded batch of (prompt, response) pairs, ready for ``RewardModel``."""
    return pad_batch(tokenizer, encode_pairs(tokenizer, prompts, responses, max_length))


def _offsets(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
    """Return the character span of every token of every text (no special tokens, no truncation)."""
    # verbose=False: texts longer than the model are expected here; they are cut afterwards.
    return tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]


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
