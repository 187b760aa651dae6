"""Sampling a batch of replies token by token, each finished row dropped from the batch as it ends.

``model.generate`` keeps a row that has ended in its batch, padding it, until the batch's longest row ends: a batch of 16
customer-service replies ran 254 decoding steps for 1,460 tokens, so nearly two thirds of the rows' work was padding. And
it draws each token from the whole vocabulary: a sort and a multinomial over 49,152 logits a row, a third of a step's
CPU. Here a row leaves the batch (its key-value cache rows with it) at its stop token, and a token is drawn among the
``top_k`` best only.

The distribution drawn from is the usual one: the repetition penalty (over the generated tokens only, as
``RepetitionPenaltyLogitsProcessor`` with the prompt ignored), the suppressed ids at minus infinity, the temperature,
then the ``top_k`` best (exactly k) and, of those, the smallest set whose probability reaches ``top_p``. Temperature 0
decodes greedily. A draw uses torch's global RNG, so a caller seeds it around the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers import DynamicCache, PreTrainedModel


@dataclass(frozen=True)
class Sampling:
    """How one batch is sampled."""

    max_new_tokens: int
    stop_ids: tuple[int, ...]
    temperature: float = 0.7
    top_k: int = 50  # 0: the whole vocabulary
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    suppressed_ids: tuple[int, ...] = ()


class GenerationStopped(Exception):
    """Raised when ``should_stop()`` answers True between two tokens; nothing is returned."""


@torch.no_grad()
def sample_rows(model: PreTrainedModel, rows: Sequence[Sequence[int]], pad_id: int, sampling: Sampling, *,
                should_stop: Callable[[], bool] | None = None) -> list[list[int]]:
    """Return each prompt row's new token ids: up to and including its first stop id, or ``max_new_tokens`` of them.

    The rows are left-padded with ``pad_id`` behind an attention mask; ``should_stop()``, asked after each token, answering
    True raises GenerationStopped.
    """
    device = model.device
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, ids in enumerate(rows):
        input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        mask[r, width - len(ids):] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    stops = torch.tensor(sampling.stop_ids, dtype=torch.long, device=device)
    suppressed = torch.tensor(sampling.suppressed_ids, dtype=torch.long, device=device)
    cache = DynamicCache(config=model.config)
    out: list[list[int]] = [[] for _ in rows]
    alive = list(range(len(rows)))  # the original row of each row still in the batch
    seen = torch.empty((len(rows), 0), dtype=torch.long, device=device)  # the live rows' generated tokens
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
                   logits_to_keep=1).logits[:, -1].float()
    for step in range(sampling.max_new_tokens):
        tokens = _draw(_processed(logits, seen, suppressed, sampling), sampling)
        for row, token in zip(alive, tokens.tolist()):
            out[row].append(token)
        if should_stop is not None and should_stop():
            raise GenerationStopped("stopped on request while sampling")
        if step + 1 == sampling.max_new_tokens:
            break
        going = ~torch.isin(tokens, stops)
        kept = going.nonzero().squeeze(1)
        if kept.numel() == 0:
            break
        if kept.numel() < len(alive):
            cache.batch_select_indices(kept)
            alive = [alive[k] for k in kept.tolist()]
            tokens, mask, positions, seen = tokens[kept], mask[kept], positions[kept], seen[kept]
        seen = torch.cat([seen, tokens[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
        positions = positions[:, -1:] + 1
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True).logits[:, -1].float()
    return out


def _processed(logits: torch.Tensor, seen: torch.Tensor, suppressed: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """The logits after the repetition penalty over ``seen`` and the suppressed ids (in place: they are this step's own)."""
    if sampling.repetition_penalty != 1.0 and seen.shape[1]:
        picked = logits.gather(1, seen)
        picked = torch.where(picked < 0, picked * sampling.repetition_penalty, picked / sampling.repetition_penalty)
        logits.scatter_(1, seen, picked)
    if suppressed.numel():
        logits.index_fill_(1, suppressed, float("-inf"))
    return logits


def _draw(scores: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """One token per row: the best at temperature 0, else a draw among the top-k best and, of those, the top-p nucleus."""
    if sampling.temperature <= 0:
        return scores.argmax(dim=-1)
    scores = scores / sampling.temperature
    if 0 < sampling.top_k < scores.shape[1]:
        values, ids = scores.topk(sampling.top_k, dim=-1)  # sorted, best first
    elif sampling.top_p < 1.0:
        values, ids = scores.sort(dim=-1, descending=True)
    else:
        return torch.multinomial(torch.softmax(scores, dim=-1), 1).squeeze(1)
    probs = torch.softmax(values, dim=-1)
    if sampling.top_p < 1.0:
        before = probs.cumsum(dim=-1) - probs  # the probability of the better tokens: a token is kept while they fall short of top_p
        probs = probs.masked_fill(before >= sampling.top_p, 0.0)
    return ids.gather(1, torch.multinomial(probs, 1)).squeeze(1)
