"""Improve the policy with DPO on preference pairs, through a LoRA adapter.

``train_dpo`` reads top to bottom: load the parent policy (its LoRA chain merged), wrap it in a
fresh LoRA adapter, score every chosen and rejected response once under the reference (the same
model with the adapter off, i.e. the parent) and keep those log-probabilities in memory, then
for each batch score the pair under the policy (adapter on) and minimise the DPO loss

    -log σ(β [(log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r))])

where log π(y) sums the log-probabilities of the response tokens only (the prompt is context).
The reference never changes during a run, so one pass before training serves every epoch; β
(``DPOConfig.beta``) is the KL strength and ``max_steps`` caps the optimizer steps; the batches
are planned first (``batch_schedule``), so a capped run scores under the reference only the
pairs it will visit.
Each pair counts by its ``weight``; ties are skipped (DPO has no notion of "equally good") and
the pair's ``margin`` is not used. The on-policy pairs come from ``rm_trainer.online``.

A version is written as "lora": the adapter alone (a few MB) and a manifest naming its parent.
A full copy of the weights per version would cost 270 MB (SmolLM2) to 1 GB (Qwen2.5-0.5B) each;
loading walks the chain and merges, see ``rm_trainer.generator.load_causal_lm``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from rm_trainer.config import DPOConfig, GenerationConfig
from rm_trainer.data import PreferencePair
from rm_trainer.device import autocast, resolve_device
from rm_trainer.generator import (
    POLICY_KIND, GenerationResult, Generator, PromptItem, chat_prompt_ids, load_causal_lm, peft_quiet, policy_chain, runtime_dtype, seeded,
    stop_token_ids,
)
from rm_trainer.store import CheckpointStore, read_manifest

Progress = Callable[[dict[str, Any]], None]
ScoreFn = Callable[[str, Sequence[str]], Sequence[float]]


class DPOCancelled(Exception):
    """Raised by ``train_dpo`` when ``should_stop()`` answers True; nothing is written."""


@dataclass(frozen=True)
class DPOResult:
    """What a DPO run produced: the new policy version and its training figures."""

    name: str
    path: str
    parent: str
    n_pairs: int
    steps: int
    metrics: dict[str, Any]
    seconds: float
    manifest: dict[str, Any]


@dataclass(frozen=True)
class WinRate:
    """How often the reward model prefers the new policy's reply over the old one's."""

    win_rate: float  # (wins + ties / 2) / n
    wins: int
    ties: int
    losses: int
    n: int
    mean_reward_gap: float  # mean of score(new) - score(old)
    mean_reply_tokens: float = 0.0  # the new policy's replies: generated tokens, the stop token included
    mean_reply_chars: float = 0.0  # the new policy's replies: characters of the stripped text
    old_mean_reply_tokens: float = 0.0  # the same two figures for the old policy's replies
    old_mean_reply_chars: float = 0.0
    kl_to_base: float | None = None  # nats per reply: the new policy's estimated KL to the base (None: no base given)
    kl_to_base_per_token: float | None = None  # the same, per reply token (the stop token included)


def dpo_loss(
    policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
    beta: float, weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Return (weighted mean DPO loss, per-pair implicit reward margins β[Δchosen - Δrejected])."""
    margins = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    losses = -F.logsigmoid(margins)
    if weight is None:
        return losses.mean(), margins
    return (weight * losses).sum() / weight.sum(), margins


def sequence_logps(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor) -> Tensor:
    """Return the summed log-probability of the tokens where ``response_mask`` is 1, per row."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    targets = input_ids[:, 1:]
    token_logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    return (token_logps * response_mask[:, 1:]).sum(-1)


@torch.no_grad()
def reply_logps(
    model: torch.nn.Module, prompt_ids: Sequence[list[int]], reply_ids: Sequence[list[int]], device: torch.device, batch_size: int,
) -> list[float]:
    """Return log p(reply | prompt) under ``model`` as it is (temperature 1, nothing filtered), summed over each reply's tokens."""
    rows = [(prompt + reply, [0] * len(prompt) + [1] * len(reply)) for prompt, reply in zip(prompt_ids, reply_ids)]
    logps: list[float] = []
    for begin in range(0, len(rows), batch_size):
        logps += sequence_logps(model, *_collate(rows[begin:begin + batch_size], device)).float().cpu().tolist()
    return logps


def encode_response(
    tokenizer: PreTrainedTokenizerBase, prompt_ids: list[int], response: str, end_id: int, max_length: int,
) -> tuple[list[int], list[int]]:
    """Return (ids, response mask) of a prompt and its response, ended by ``end_id``, within ``max_length``.

    The prompt keeps its last ``max_length // 2`` tokens; the response fills the rest.
    """
    prompt_ids = prompt_ids[-(max_length // 2):]
    response_ids = (tokenizer(response, add_special_tokens=False)["input_ids"] + [end_id])[: max_length - len(prompt_ids)]
    return prompt_ids + response_ids, [0] * len(prompt_ids) + [1] * len(response_ids)


def train_dpo(
    base_policy_folder: str | os.PathLike[str],
    pairs: Sequence[PreferencePair],
    config: DPOConfig,
    *,
    store: CheckpointStore,
    name: str,
    parent: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DPOResult:
    """Fine-tune the policy in ``base_policy_folder`` on ``pairs`` and write policy version ``name``.

    ``base_policy_folder`` must be the folder of policy version ``parent`` of ``store`` (by
    default, the name its manifest gives), since the new version stores only an adapter on it.
    """
    start = time.perf_counter()
    parent = parent or read_manifest(base_policy_folder)["name"]
    if store.path(POLICY_KIND, parent).resolve() != Path(base_policy_folder).resolve():
        raise ValueError(f"{base_policy_folder} is not policy version {parent!r} of the store; materialise it first")
    usable = [p for p in pairs if not p.tie and p.weight > 0]
    if not usable:
        raise ValueError("DPO needs at least one pair that is not a tie and has a positive weight")
    device = resolve_device(config.device)
    with seeded(device, config.seed):  # the LoRA init and dropout, without moving the caller's RNG
        model, tokenizer, examples = _prepare(base_policy_folder, usable, config, device)
        schedule = batch_schedule(len(examples), config)
        seen = sorted({k for _, batch in schedule for k in batch})  # a capped run scores only the pairs it visits
        reference_start = time.perf_counter()
        reference_logps(model, [examples[k] for k in seen], config, device, progress, should_stop)
        reference_seconds = time.perf_counter() - reference_start
        train_start = time.perf_counter()
        history = _train(model, examples, schedule, config, device, progress, should_stop)
        train_seconds = time.perf_counter() - train_start

    steps = len(history["loss"])
    last_epoch = min(math.ceil(len(examples) / config.batch_size), steps)
    metrics = {  # the means over the last epoch (or the steps run, when capped), and the loss at every step
        "loss": float(np.mean(history["loss"][-last_epoch:])),
        "reward_margin": float(np.mean(history["reward_margin"][-last_epoch:])),
        "reward_accuracy": float(np.mean(history["reward_accuracy"][-last_epoch:])),
        "loss_history": history["loss"],
        "beta": config.beta, "steps": steps, "seconds_per_step": train_seconds / steps,
        "reference_seconds": reference_seconds, "n_pairs_seen": len(seen),
    }
    chain = policy_chain(base_policy_folder)
    manifest = {
        "format": "lora", "parent": parent, "root": chain[0].name, "depth": len(chain),
        "config": dataclasses.asdict(config), "metrics": metrics, "n_pairs": len(usable),
        "steps": steps, "device": str(device),
    }
    path = store.write(POLICY_KIND, name, manifest, lambda tmp: model.save_pretrained(tmp))
    seconds = time.perf_counter() - start
    return DPOResult(name=name, path=str(path), parent=parent, n_pairs=len(usable), steps=steps,
                     metrics=metrics, seconds=seconds, manifest=read_manifest(path))


def _prepare(
    folder: str | os.PathLike[str], pairs: Sequence[PreferencePair], config: DPOConfig, device: torch.device,
) -> tuple[PeftModel, PreTrainedTokenizerBase, list[dict[str, Any]]]:
    model, tokenizer = load_causal_lm(folder)
    end_id = stop_token_ids(tokenizer, model)[0]
    # bf16 on CUDA only: on a CPU, a short run's log-ratios stay below bf16 rounding noise.
    model = model.to(device=device, dtype=runtime_dtype(device, config.bf16 and device.type == "cuda"))
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules), task_type="CAUSAL_LM",
    )
    with peft_quiet():
        model = get_peft_model(model, lora)
    examples = []
    for pair in pairs:
        prompt_ids = chat_prompt_ids(tokenizer, PromptItem(pair.prompt), config.system_prompt)
        chosen = encode_response(tokenizer, prompt_ids, pair.chosen, end_id, config.max_length)
        rejected = encode_response(tokenizer, prompt_ids, pair.rejected, end_id, config.max_length)
        examples.append({"chosen": chosen, "rejected": rejected, "weight": pair.weight})
    return model, tokenizer, examples


@torch.no_grad()
def reference_logps(
    model: PeftModel, examples: list[dict[str, Any]], config: DPOConfig, device: torch.device,
    progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
) -> None:
    """Set each example's "ref" to the reference's (log π_ref(chosen), log π_ref(rejected)), in one pass.

    The reference is ``model`` with its adapter off (the parent policy, frozen), so its values hold
    for the whole run. Examples are batched by length, ``config.batch_size`` pairs at a time.
    """
    model.eval()
    order = sorted(range(len(examples)), key=lambda k: max(len(examples[k]["chosen"][0]), len(examples[k]["rejected"][0])))
    total = math.ceil(len(order) / config.batch_size)
    with model.disable_adapter(), autocast(device, bf16=config.bf16):
        for step, begin in enumerate(range(0, len(order), config.batch_size), start=1):
            if should_stop is not None and should_stop():
                raise DPOCancelled(f"stopped in the reference pass, after {step - 1} of {total} batches")
            batch = [examples[k] for k in order[begin:begin + config.batch_size]]
            rows = [e["chosen"] for e in batch] + [e["rejected"] for e in batch]
            ref = sequence_logps(model, *_collate(rows, device)).float().cpu()
            for e, chosen, rejected in zip(batch, ref[:len(batch)].tolist(), ref[len(batch):].tolist()):
                e["ref"] = (chosen, rejected)
            if progress is not None:
                progress({"phase": "reference", "step": step, "total_steps": total})


def batch_schedule(n: int, config: DPOConfig) -> list[tuple[int, list[int]]]:
    """Return the run's batches in order, as (epoch, example indices): a seeded shuffle per epoch, at most ``max_steps``."""
    rng = np.random.default_rng(config.seed)
    schedule = []
    for epoch in range(config.epochs):
        order = rng.permutation(n).tolist()
        schedule += [(epoch, order[begin:begin + config.batch_size]) for begin in range(0, n, config.batch_size)]
    return schedule[:config.max_steps] if config.max_steps > 0 else schedule


def _train(
    model: PeftModel, examples: list[dict[str, Any]], schedule: list[tuple[int, list[int]]], config: DPOConfig,
    device: torch.device, progress: Progress | None, should_stop: Callable[[], bool] | None,
) -> dict[str, list[float]]:
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    total_steps = len(schedule)
    history: dict[str, list[float]] = {"loss": [], "reward_margin": [], "reward_accuracy": []}
    model.train()
    for epoch, indices in schedule:
        if should_stop is not None and should_stop():
            raise DPOCancelled(f"stopped after {len(history['loss'])} of {total_steps} steps")
        batch = [examples[k] for k in indices]
        input_ids, attention_mask, response_mask = _collate([e["chosen"] for e in batch] + [e["rejected"] for e in batch], device)
        weight = torch.tensor([e["weight"] for e in batch], dtype=torch.float32, device=device)
        ref = torch.tensor([e["ref"][0] for e in batch] + [e["ref"][1] for e in batch], dtype=torch.float32, device=device)
        with autocast(device, bf16=config.bf16):
            policy = sequence_logps(model, input_ids, attention_mask, response_mask)
        half = len(batch)
        loss, margins = dpo_loss(policy[:half], policy[half:], ref[:half], ref[half:], beta=config.beta, weight=weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history["loss"].append(loss.item())
        history["reward_margin"].append(margins.mean().item())
        history["reward_accuracy"].append((margins > 0).float().mean().item())
        if progress is not None:
            progress({
                "phase": "dpo", "step": len(history["loss"]), "total_steps": total_steps, "epoch": epoch + 1,
                "loss": history["loss"][-1], "reward_margin": history["reward_margin"][-1],
                "reward_accuracy": history["reward_accuracy"][-1],
            })
    model.eval()
    return history


def _collate(rows: list[tuple[list[int], list[int]]], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Return right-padded (ids, attention mask, response mask); pads are masked, so any id will do."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    response_mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for r, (ids, mask) in enumerate(rows):
        input_ids[r, :len(ids)] = torch.tensor(ids)
        attention_mask[r, :len(ids)] = 1
        response_mask[r, :len(ids)] = torch.tensor(mask, dtype=torch.float32)
    return input_ids.to(device), attention_mask.to(device), response_mask.to(device)


def policy_win_rate(
    new: Generator, old: Generator, prompts: Sequence[PromptItem | str], score_fn: ScoreFn, config: GenerationConfig,
    base: Generator | None = None,
) -> WinRate:
    """Return how often ``score_fn`` prefers ``new``'s reply to each prompt over ``old``'s (one each), and both replies' mean lengths.

    Given the ``base`` policy, the new one's replies also estimate its KL to the base (see ``kl_to_base``).
    """
    items = [PromptItem(p) if isinstance(p, str) else p for p in prompts]
    new_result = new.generate_with_stats(items, 1, config)
    old_result = old.generate_with_stats(items, 1, config)
    kl, kl_per_token = kl_to_base(new, base, items, new_result, config) if base is not None else (None, None)
    new_replies, old_replies = new_result.raw, old_result.raw
    wins = ties = 0
    gaps = []
    for item, (new_reply,), (old_reply,) in zip(items, new_replies, old_replies):
        new_score, old_score = score_fn(item.prompt, [new_reply, old_reply])
        gaps.append(float(new_score) - float(old_score))
        wins += new_score > old_score
        ties += new_score == old_score
    n = len(items)
    losses = n - wins - ties
    return WinRate(win_rate=(wins + ties / 2) / n if n else 0.0, wins=int(wins), ties=int(ties), losses=int(losses),
                   n=n, mean_reward_gap=float(np.mean(gaps)) if gaps else 0.0,
                   mean_reply_tokens=_mean(sum(new_result.raw_lengths, [])), mean_reply_chars=_mean([len(r) for r in sum(new_replies, [])]),
                   old_mean_reply_tokens=_mean(sum(old_result.raw_lengths, [])),
                   old_mean_reply_chars=_mean([len(r) for r in sum(old_replies, [])]),
                   kl_to_base=kl, kl_to_base_per_token=kl_per_token)


def kl_to_base(
    new: Generator, base: Generator, items: Sequence[PromptItem], result: GenerationResult, config: GenerationConfig,
) -> tuple[float, float]:
    """Return the KL of ``new`` to ``base`` estimated from ``new``'s samples in ``result``: (nats per reply, nats per token).

    Each sample y of prompt x adds log π(y|x) - log π_base(y|x), summed over its tokens (the stop
    token included), with the chat prompt the samples were drawn from; its mean over the samples
    estimates KL(π || π_base), as TRL's online DPO reports it ("objective/kl"). Both log-probs are
    the raw models' at temperature 1. The samples were drawn with ``config``'s temperature, top-p,
    top-k, repetition penalty and suppressed tokens, so they follow a sharpened π: the figure is the
    KL of the models, estimated from samples of the sampling distribution, not that distribution's
    own KL (at temperature 0, the mean log-ratio of the greedy replies). ``base`` must share
    ``new``'s tokenizer, as every version of one policy chain does.
    """
    prompts = [ids for ids, samples in zip(new.prompt_ids(items, config), result.raw_ids) for _ in samples]
    replies = [reply for samples in result.raw_ids for reply in samples]
    if not replies:
        return 0.0, 0.0
    new_logps = reply_logps(new.model, prompts, replies, new.device, config.batch_size)
    base_logps = reply_logps(base.model, prompts, replies, base.device, config.batch_size)
    ratios = [a - b for a, b in zip(new_logps, base_logps)]
    return float(np.mean(ratios)), float(sum(ratios) / sum(len(reply) for reply in replies))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0
