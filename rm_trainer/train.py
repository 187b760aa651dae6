"""Fit a reward model to preference pairs and write it as one immutable checkpoint.

``fit`` reads top to bottom: split the pairs by the fixed validation split, get an encoder
(the frozen backbone for the "fast" tier; for the "full" tier, fine-tune the whole encoder
with the pairwise loss first), embed every pair once, fit the ensemble heads on those
embeddings, measure the new model and the baseline on the same validation pairs, and write
the checkpoint. Both tiers end with the same heads on embeddings, so one scorer serves both.
Validation figures are those of ``rm_trainer.evaluate``: tie pairs count in the loss but not
in accuracy or calibration (a tie has no winner to get right).

A checkpoint folder holds ``manifest.json`` (see ``_manifest``), ``heads.pt`` and
``heads.json`` (the ensemble), for the fast tier ``pairs.npy`` (a digest of every pair given,
which a later fit warmed by these heads counts as learned: ``rm_trainer.replay``), and for the
full tier ``encoder/`` (the fine-tuned encoder, its scalar head and its tokenizer, in
transformers format). A fast fit given ``warm_heads`` may train on fewer pairs than it is given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import compress
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from rm_trainer.config import FitConfig
from rm_trainer.data import PreferencePair, split_pairs
from rm_trainer.device import native_autocast, resolve_device
from rm_trainer.embeddings import EmbeddingCache, EncoderCache, PairEncoder, embed_cached
from rm_trainer.ensemble import RewardEnsemble, fit_ensemble
from rm_trainer.evaluate import evaluate_pairs, pairwise_metrics
from rm_trainer.loss import pairwise_loss
from rm_trainer.pair_facts import PairFacts, pair_digests
from rm_trainer.replay import PAIRS_FILE, replay_plan
from rm_trainer.reward_model import RewardModel, load_tokenizer, tokenize_pairs
from rm_trainer.scorer import ENCODER_FOLDER, RewardScorer
from rm_trainer.store import CheckpointStore

Progress = Callable[[dict[str, Any]], None]


class FitCancelled(Exception):
    """Raised by ``fit`` when ``should_stop()`` answers True; nothing is written."""


@dataclass(frozen=True)
class FitResult:
    """What a fit produced: the checkpoint and its validation figures beside the baseline's."""

    name: str
    path: str
    tier: str
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any] | None
    n_train: int
    n_validation: int
    seconds: float
    manifest: dict[str, Any]


def fit(
    pairs: Sequence[PreferencePair],
    config: FitConfig,
    *,
    store: CheckpointStore,
    name: str,
    parent: str | None = None,
    baseline: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    encoders: EncoderCache | None = None,
    warm_heads: str | None = None,
    facts: PairFacts | None = None,
) -> FitResult:
    """Fit a reward model to ``pairs`` and write it to ``store`` as reward version ``name``.

    ``baseline`` is the folder of the active checkpoint (or None); its figures on the same
    validation pairs come back beside the new model's. ``encoders`` lets a long-lived worker
    keep the frozen backbone loaded between fits. ``warm_heads``: a fast checkpoint folder whose heads a fast fit may start
    from, training on the pairs they have not learned and a bounded sample of the rest (``rm_trainer.replay``). ``facts``: each
    pair's digest and validation flag, from a caller that keeps them between fits (a fit works them out per pair otherwise).
    Raise FitCancelled when ``should_stop()``.
    """
    started = time.perf_counter()
    if store.path("reward", name).exists():
        raise FileExistsError(f"checkpoint reward/{name} already exists")  # fail before the work, not after
    report = _Reporter(progress, should_stop)
    if facts is not None and (len(facts.digests) != len(pairs) or facts.fraction != config.validation_fraction):
        raise ValueError(f"facts of {len(facts.digests)} pairs split at {facts.fraction} given for {len(pairs)} pairs split at "
                         f"{config.validation_fraction}")
    if facts is None:
        train, validation = split_pairs(pairs, config.validation_fraction)
    else:
        train, validation = list(compress(pairs, (~facts.validation).tolist())), list(compress(pairs, facts.validation.tolist()))
    if not train:
        raise ValueError("no training pairs: every pair fell into the validation split")
    device = resolve_device(config.device)
    encoders = encoders if encoders is not None else EncoderCache()
    torch.manual_seed(config.seed)

    fine_tuned, cache, plan, digests = None, None, None, None
    if config.tier == "fast":
        encoder = encoders.get(config.backbone, device=str(device), bf16=config.bf16)
        cache = EmbeddingCache(config.embedding_cache_dir, identity=encoder.identity, max_length=config.max_length)
        digests = pair_digests(pairs) if facts is None else facts.digests
        plan = replay_plan(pairs, digests, warm_heads, config, identity=encoder.identity, dim=encoder.dim)
        if plan.init is not None:  # warm: the new pairs and the replayed sample, split as the whole would be
            train, validation = split_pairs(plan.pairs, config.validation_fraction)
    else:
        fine_tuned, tokenizer = _fine_tune(train, config, device, report)
        encoder = PairEncoder(fine_tuned, tokenizer, device=device, bf16=config.bf16)

    chosen, rejected = _embed_pairs(encoder, cache, list(train) + list(validation), config, report)
    n = len(train)
    ensemble = fit_ensemble(
        chosen[:n], rejected[:n],
        margin=_margins(train, config), weight=[p.weight for p in train], tie=[p.tie for p in train],
        members=config.ensemble_size, hidden=config.head_hidden, epochs=config.epochs, patience=config.patience,
        batch_size=config.batch_size, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, seed=config.seed, device=device,
        on_epoch=lambda epoch, epochs, loss: report("heads", epoch, epochs, loss), init=plan.init if plan else None,
    )

    report("evaluate", 0, 1, None)
    metrics = _validation_metrics(ensemble, chosen[n:], rejected[n:], validation)
    baseline_metrics = None
    if baseline is not None:
        scorer = RewardScorer.load(baseline, device=str(device), encoders=encoders, bf16=config.bf16)
        if scorer.encoder is encoder and scorer.max_length == config.max_length:
            scorer.embedding_cache = cache  # the same frozen backbone: validation pairs are embedded already
        baseline_metrics = evaluate_pairs(scorer, validation)
    report("evaluate", 1, 1, None)

    manifest = _manifest(pairs, train, validation, config, encoder, parent, baseline, metrics, baseline_metrics)
    manifest["heads"] = ensemble.history
    if plan is not None:
        manifest["replay"] = {**plan.record, "pairs_given": len(pairs)}
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    path = store.write("reward", name, manifest, lambda folder: _write_checkpoint(folder, ensemble, fine_tuned, encoder, digests))
    return FitResult(
        name=name, path=str(path), tier=config.tier, metrics=metrics, baseline_metrics=baseline_metrics,
        n_train=len(train), n_validation=len(validation), seconds=time.perf_counter() - started, manifest=manifest,
    )


class _Reporter:
    """Pass progress to the caller now and then, and stop when the caller asks."""

    def __init__(self, progress: Progress | None, should_stop: Callable[[], bool] | None) -> None:
        self.progress = progress
        self.should_stop = should_stop
        self.last: tuple[str, int] | None = None

    def __call__(self, phase: str, step: int, total: int, loss: float | None, accuracy: float | None = None) -> None:
        if self.should_stop is not None and self.should_stop():
            raise FitCancelled(f"fit stopped on request during {phase} (step {step} of {total})")
        if self.progress is None:
            return
        phase_changed = self.last is None or self.last[0] != phase
        if phase_changed or step == total or step - self.last[1] >= max(1, total // 50):
            self.last = (phase, step)
            event = {"phase": phase, "step": step, "total_steps": total, "loss": loss}
            if accuracy is not None:
                event["accuracy"] = accuracy
            self.progress(event)


def _fine_tune(
    train: Sequence[PreferencePair], config: FitConfig, device: torch.device, report: _Reporter
) -> tuple[RewardModel, PreTrainedTokenizerBase]:
    """Return the encoder fine-tuned with the pairwise loss, warm-started when asked."""
    source = _encoder_folder(config.warm_start) if config.warm_start else Path(config.backbone)
    model = RewardModel.from_pretrained(source).to(device).train()
    _disable_dropout(model)
    tokenizer = load_tokenizer(source)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.full_learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    total = config.full_epochs * math.ceil(len(train) / config.full_batch_size)
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (total - s) / total)
    step = 0
    for _ in range(config.full_epochs):
        for batch in _length_grouped_batches(train, config.full_batch_size, rng):
            b = len(batch)
            inputs = tokenize_pairs(
                tokenizer, [p.prompt for p in batch] * 2, [p.chosen for p in batch] + [p.rejected for p in batch],
                config.max_length,
            )
            with native_autocast(device, bf16=config.bf16):
                rewards = model(**{k: v.to(device) for k, v in inputs.items()})
            margin = torch.tensor(_margins(batch, config), device=device)
            weight = torch.tensor([p.weight for p in batch], device=device)
            tie = torch.tensor([p.tie for p in batch], device=device)
            loss = pairwise_loss(rewards[:b], rewards[b:], margin, weight, tie)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            right = (rewards[:b] > rewards[b:])[~tie].float()
            report("fine_tune", step, total, loss.item(), right.mean().item() if len(right) else None)
    return model.eval(), tokenizer


def _disable_dropout(model: torch.nn.Module) -> None:
    """Turn dropout off, as TRL's reward trainer does.

    The loss compares two forward passes, so dropout's noise lands in their difference; on a
    CPU it also makes a MiniLM step about 2.5x slower.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _length_grouped_batches(pairs: Sequence[PreferencePair], batch_size: int, rng: np.random.Generator) -> list[list[PreferencePair]]:
    """Return the pairs in random batches of similar length, which cuts padding."""
    order = rng.permutation(len(pairs))
    batches = []
    for start in range(0, len(order), batch_size * 16):
        group = sorted(order[start : start + batch_size * 16], key=lambda i: _chars(pairs[i]))
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return [[pairs[i] for i in batches[j]] for j in rng.permutation(len(batches))]


def _chars(pair: PreferencePair) -> int:
    return len(pair.prompt) + max(len(pair.chosen), len(pair.rejected))


def _embed_pairs(
    encoder: PairEncoder, cache: EmbeddingCache | None, pairs: Sequence[PreferencePair], config: FitConfig, report: _Reporter
) -> tuple[np.ndarray, np.ndarray]:
    """Return embeddings of (prompt, chosen) and (prompt, rejected) of every pair."""
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    on_batch = lambda done, total: report("embed", done, total, None)  # noqa: E731
    if cache is not None:
        vectors = embed_cached(encoder, cache, prompts, responses, on_batch=on_batch)
    else:
        vectors = encoder.embed(prompts, responses, max_length=config.max_length, on_batch=on_batch)
    return vectors[: len(pairs)], vectors[len(pairs) :]


def _margins(pairs: Sequence[PreferencePair], config: FitConfig) -> list[float]:
    return [p.margin if config.use_margin and not p.tie else 0.0 for p in pairs]


def _validation_metrics(
    ensemble: RewardEnsemble, chosen: np.ndarray, rejected: np.ndarray, validation: Sequence[PreferencePair]
) -> dict[str, Any]:
    """Return ``pairwise_metrics`` of the ensemble mean, plus the mean spread of the members."""
    chosen_rewards, rejected_rewards = ensemble.member_rewards(chosen), ensemble.member_rewards(rejected)
    metrics = pairwise_metrics(chosen_rewards.mean(0) - rejected_rewards.mean(0), [p.tie for p in validation])
    spread = np.concatenate([chosen_rewards, rejected_rewards], 1).std(0)
    metrics["uncertainty"] = float(spread.mean()) if len(validation) else None
    return metrics


def _encoder_folder(folder: str) -> Path:
    """Return the encoder inside a full-tier checkpoint, or ``folder`` itself if it is one."""
    inner = Path(folder) / ENCODER_FOLDER
    return inner if inner.is_dir() else Path(folder)


def _manifest(
    pairs: Sequence[PreferencePair],
    train: Sequence[PreferencePair],
    validation: Sequence[PreferencePair],
    config: FitConfig,
    encoder: PairEncoder,
    parent: str | None,
    baseline: str | None,
    metrics: dict[str, Any],
    baseline_metrics: dict[str, Any] | None,
) -> dict[str, Any]:
    ids = [str(p.pair_id) for p in pairs]
    return {
        "tier": config.tier,
        "backbone": str(config.backbone),
        "backbone_identity": encoder.identity if config.tier == "fast" else None,
        "warm_start": config.warm_start,
        "parent": parent,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "hyperparameters": dataclasses.asdict(config),
        "embedding_dim": encoder.dim,
        "data": {
            "n_pairs": len(pairs),
            "n_train": len(train),
            "n_validation": len(validation),
            "n_ties": sum(p.tie for p in pairs),
            "first_pair_id": ids[0] if ids else None,
            "last_pair_id": ids[-1] if ids else None,
            "pair_ids_sha256": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest(),
        },
        "metrics": metrics,
        "baseline": {"checkpoint": baseline, "metrics": baseline_metrics} if baseline else None,
    }


def _write_checkpoint(
    folder: Path, ensemble: RewardEnsemble, fine_tuned: RewardModel | None, encoder: PairEncoder, digests: np.ndarray | None
) -> None:
    ensemble.save(folder)
    if digests is not None:  # what a later fast fit warmed by these heads counts as learned (rm_trainer.replay)
        np.save(folder / PAIRS_FILE, digests)
    if fine_tuned is not None:
        fine_tuned.save_pretrained(folder / ENCODER_FOLDER)
        encoder.tokenizer.save_pretrained(folder / ENCODER_FOLDER)
