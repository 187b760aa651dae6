"""Training runs, and the versions they produce.

A run is queued in one transaction and enqueued after it commits. A worker claims it by
updating its status from "queued" to "running" (a redelivered message finds it claimed and does
nothing), reports progress on the row as it goes, and finishes it with one transaction that
records the new version and, when the promotion gate allows, makes it the active one. A run
whose worker dies is failed by the next worker that starts on that host, or by the periodic
reaper once its heartbeat is older than TRAINING_HEARTBEAT_TIMEOUT. A failed run changes no
active version and loses no label. At most one run of a kind is queued: asking again returns it.
A queued run whose message was lost (a broker restart, say) is sent again by the reaper; the
claim makes a duplicate harmless. Waiting behind a long run never fails a run.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from feedback_app import events, training_bridge
from feedback_app.models import AuditEntry, PolicyVersion, PreferenceLabel, RewardModelVersion, TrainingRun, VersionStatus
from feedback_app.selectors.training import (
    labels_for_training,
    policy_active,
    prompts_held_out,
    reward_model_active,
    reward_model_latest_full,
    rater_weights,
    verdicts,
)

logger = logging.getLogger(__name__)
BASE_POLICY = "policy-base"
REWARD_KINDS = (TrainingRun.Kind.REWARD_FAST, TrainingRun.Kind.REWARD_FULL)


class TrainingError(Exception):
    """A run that cannot proceed; the message says why and becomes the run's error."""


class RunStopped(Exception):
    """The run was failed or cancelled by someone else while it trained."""


class VersionPruned(Exception):
    """The version's checkpoint folder was removed by retention; it cannot become active again."""


def training_run_request(*, kind: str, trigger: str, user=None) -> TrainingRun:
    """Return the queued run of ``kind``, or queue one; it is sent to the "gpu" queue once this transaction commits."""
    return training_run_get_or_request(kind=kind, trigger=trigger, user=user)[0]


def training_run_get_or_request(*, kind: str, trigger: str, user=None) -> tuple[TrainingRun, bool]:
    """Return (the queued run of ``kind``, False), or queue a new one and return (it, True)."""
    if kind not in TrainingRun.Kind.values:
        raise ValueError(f"unknown training run kind {kind!r}; expected one of {', '.join(TrainingRun.Kind.values)}")
    waiting = TrainingRun.objects.filter(kind=kind, status=TrainingRun.Status.QUEUED).first()
    if waiting is not None:
        return waiting, False
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(kind=kind, trigger=trigger, requested_by=user, enqueued_at=timezone.now(), enqueue_count=1)
            if user is not None:
                AuditEntry.objects.create(actor=user, action="training.request", target=f"run:{run.pk}", details={"kind": kind, "trigger": trigger})
            events.training_run_queued(run=run)
    except IntegrityError:
        # Another process queued one a moment ago (one_queued_run_per_kind): that is the answer.
        waiting = TrainingRun.objects.filter(kind=kind, status=TrainingRun.Status.QUEUED).first()
        if waiting is None:
            raise
        return waiting, False
    return run, True


def training_auto_refit_if_due() -> TrainingRun | None:
    """Queue a fast refit when REFIT_EVERY_N_LABELS labels arrived since the last reward version's data."""
    every = settings.REFIT_EVERY_N_LABELS
    if not every:
        return None
    kind = TrainingRun.Kind.REWARD_FAST
    pending = TrainingRun.objects.filter(kind=kind, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])
    if pending.filter(Q(trigger=TrainingRun.Trigger.AUTO) | Q(status=TrainingRun.Status.QUEUED)).exists():
        return None  # the next refit is on its way; it will take these labels too
    newest = RewardModelVersion.objects.order_by("-id").values_list("data_range", flat=True).first() or {}
    last = newest.get("last_label_id") or 0
    if PreferenceLabel.objects.filter(pk__gt=last).count() < every:
        return None
    try:
        with transaction.atomic():
            run, created = training_run_get_or_request(kind=kind, trigger=TrainingRun.Trigger.AUTO)
    except IntegrityError:
        return None  # another process queued it a moment ago
    return run if created else None


def training_run_execute(*, run_id: int, worker: str = "") -> None:
    """Claim and carry out a queued run; a run that is not queued (any more) is left alone."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:255]
    )
    if not claimed:
        logger.info("training run %s is not queued (missing, or claimed before): nothing to do", run_id)
        return
    run = TrainingRun.objects.get(pk=run_id)
    events.training_run_changed(run=run)
    monitor = _RunMonitor(run_id)
    try:
        if run.kind in REWARD_KINDS:
            _reward_run(run, monitor)
        else:
            _policy_run(run, monitor)
    except Exception as exc:  # every failure ends the run, with its reason
        detail = str(exc) if isinstance(exc, (TrainingError, RunStopped)) else f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
        logger.warning("training run %s failed: %s", run_id, exc)
        training_run_fail(run_id=run_id, error=detail)


def training_run_fail(*, run_id: int, error: str) -> bool:
    """Mark a queued or running run failed; return whether it was."""
    with transaction.atomic():
        updated = TrainingRun.objects.filter(pk=run_id, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).update(
            status=TrainingRun.Status.FAILED, error=error[:20000], finished_at=timezone.now()
        )
        if updated:
            events.training_run_changed(run=TrainingRun.objects.get(pk=run_id))
    return bool(updated)


def training_runs_fail_orphaned(*, worker: str) -> int:
    """Fail the runs a worker of this name left running when it died (call as it starts)."""
    ids = list(TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, worker=worker).values_list("pk", flat=True))
    return sum(training_run_fail(run_id=pk, error=f"the worker {worker} stopped while this run was training") for pk in ids)


def checkpoints_remove_abandoned() -> int:
    """Delete the half-written checkpoints of runs that are no longer running; return how many."""
    running = {f"{prefix}-{pk:05d}" for pk in TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).values_list("pk", flat=True)
               for prefix in ("rm", "policy")}
    removed = 0
    for name, folder in training_bridge.checkpoint_partials():
        if name not in running:
            training_bridge.checkpoint_partial_remove(folder)
            removed += 1
    return removed


def training_runs_reap(*, now: datetime | None = None) -> int:
    """Fail running runs whose heartbeat is older than TRAINING_HEARTBEAT_TIMEOUT."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    stale = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=cutoff).values_list("pk", "worker")
    return sum(
        training_run_fail(run_id=pk, error=f"no heartbeat from {worker or 'its worker'} for {settings.TRAINING_HEARTBEAT_TIMEOUT} s; the worker was lost")
        for pk, worker in list(stale)
    )


class _RunMonitor:
    """Write progress and a heartbeat on the run row at most once a second; notice a cancel."""

    def __init__(self, run_id: int, interval: float = 1.0) -> None:
        self.run_id = run_id
        self.interval = interval
        self.last_write = 0.0
        self.last_check = 0.0
        self.stopped = False

    def progress(self, event: dict) -> None:
        now = time.monotonic()
        final = event.get("step") == event.get("total_steps")
        if now - self.last_write < self.interval and not final:
            return
        self.last_write = self.last_check = now
        clean = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in event.items() if not isinstance(v, (list, dict))}
        updated = TrainingRun.objects.filter(pk=self.run_id, status=TrainingRun.Status.RUNNING).update(
            progress=clean, heartbeat_at=timezone.now()
        )
        self.stopped = not updated
        if updated:
            events.training_run_progress(run_id=self.run_id, progress=clean)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self.last_check >= self.interval:
            self.last_check = now
            self.stopped = not TrainingRun.objects.filter(pk=self.run_id, status=TrainingRun.Status.RUNNING).exists()
        return self.stopped


def _reward_run(run: TrainingRun, monitor: _RunMonitor) -> None:
    tier = "full" if run.kind == TrainingRun.Kind.REWARD_FULL else "fast"
    labels, data_range = labels_for_training()
    pairs = training_bridge.preference_pairs(labels, weights=rater_weights(), verdicts=verdicts())
    if len(pairs) < 2:
        raise TrainingError(f"only {len(pairs)} decided comparison(s) so far; a reward model needs at least 2")
    active = reward_model_active()
    warm = reward_model_latest_full() if tier == "full" and settings.REWARD_FULL_WARM_START else None
    name = f"rm-{run.pk:05d}"
    try:
        result = training_bridge.reward_fit(
            pairs=pairs, tier=tier, name=name, parent=active.name if active else None,
            baseline_path=active.path if active else None, warm_start_path=warm.path if warm else None,
            progress=monitor.progress, should_stop=monitor.should_stop,
        )
    except Exception as exc:
        if type(exc).__name__ == "FitCancelled":
            raise RunStopped("the run was stopped while it trained") from None
        raise
    promote, reason = reward_promotion_decision(new=result.metrics, baseline=result.baseline_metrics)
    metrics = {
        "val_accuracy": result.metrics.get("accuracy"), "val_loss": result.metrics.get("loss"), "val_ece": result.metrics.get("ece"),
        "calibration": result.metrics.get("bins"), "n_train": result.n_train, "n_validation": result.n_validation,
        "seconds": round(result.seconds, 2), "baseline": _summary(result.baseline_metrics), "promoted": promote, "gate": reason,
    }
    with transaction.atomic():
        version = RewardModelVersion.objects.create(
            name=name, path=f"reward/{name}", parent=active, tier=tier, backbone=result.manifest.get("backbone", ""),
            metrics=metrics, manifest=result.manifest, data_range={**data_range, "n_pairs": len(pairs)},
        )
        if promote:
            version_activate(version=version, user=None, action="promote", reason=f"training run {run.pk}: {reason}")
        _run_succeed(run, metrics=metrics, reward_model_version=version)


def reward_promotion_decision(*, new: dict, baseline: dict | None) -> tuple[bool, str]:
    """Return (promote, why): promote unless the new model is worse than the active one on the same pairs.

    "Worse" means lower validation accuracy by more than PROMOTION_TOLERANCE or by more than
    one standard error of that accuracy, whichever is larger: on a few dozen validation pairs
    accuracy moves by several points from noise alone, and a gate tighter than the noise would
    refuse good models at random.
    """
    if baseline is None:
        return True, "no reward model was active"
    new_acc, old_acc, n = new.get("accuracy"), baseline.get("accuracy"), baseline.get("n") or new.get("n") or 0
    if new_acc is None or old_acc is None or not n:
        return False, "no validation pairs to compare on; kept as a candidate"
    allowed = max(settings.PROMOTION_TOLERANCE, math.sqrt(max(old_acc * (1 - old_acc), 0.0) / n))
    if new_acc >= old_acc - allowed:
        return True, f"validation accuracy {new_acc:.3f} vs active {old_acc:.3f} on {n} pairs (allowed drop {allowed:.3f})"
    return False, f"validation accuracy {new_acc:.3f} is worse than the active {old_acc:.3f} on {n} pairs by more than {allowed:.3f}"


def _policy_run(run: TrainingRun, monitor: _RunMonitor) -> None:
    reward = reward_model_active()
    if reward is None:
        raise TrainingError("a DPO run needs an active reward model to judge the new policy; train one first")
    base = policy_ensure_base()
    held_out = prompts_held_out(limit=settings.DPO_EVAL_PROMPTS)
    labels, data_range = labels_for_training(exclude_prompt_ids=[p.pk for p in held_out])
    pairs = [p for p in training_bridge.preference_pairs(labels, weights=rater_weights(), verdicts=verdicts()) if not p.tie][-settings.DPO_MAX_PAIRS:]
    if not pairs:
        raise TrainingError("no decided comparisons outside the held-out prompts to learn from yet")
    if not held_out:
        raise TrainingError("no held-out prompts to evaluate the new policy on; import more prompts")
    name = f"policy-{run.pk:05d}"
    try:
        result = training_bridge.dpo_train(base_name=base.name, base_path=base.path, name=name, pairs=pairs,
                                           progress=monitor.progress, should_stop=monitor.should_stop)
    except Exception as exc:
        if type(exc).__name__ == "DPOCancelled":
            raise RunStopped("the run was stopped while it trained") from None
        raise
    monitor.progress({"phase": "evaluate", "step": 0, "total_steps": 1})
    win = training_bridge.policy_win_rate(
        new_path=f"policy/{name}", old_name=base.name, old_path=base.path, reward_name=reward.name, reward_path=reward.path,
        prompts=[(p.text, p.context) for p in held_out], seed=run.pk,
    )
    promote = win.win_rate > settings.POLICY_PROMOTION_WIN_RATE
    metrics = {
        "win_rate_vs_parent": win.win_rate, "wins": win.wins, "ties": win.ties, "losses": win.losses, "n_eval_prompts": win.n,
        "mean_reward_gap": win.mean_reward_gap, "dpo_loss": result.metrics.get("loss"),
        "dpo_reward_accuracy": result.metrics.get("reward_accuracy"), "n_pairs": result.n_pairs, "steps": result.steps,
        "seconds": round(result.seconds, 2), "judge": reward.name, "promoted": promote,
        "gate": f"reward-model win rate {win.win_rate:.3f} vs parent (needs > {settings.POLICY_PROMOTION_WIN_RATE})",
    }
    with transaction.atomic():
        version = PolicyVersion.objects.create(
            name=name, path=f"policy/{name}", parent=base, generator=base.generator, reward_model=reward,
            sampling=base.sampling, selection_strategy=settings.SELECTION_STRATEGY, metrics=metrics, manifest=result.manifest,
        )
        if promote:
            version_activate(version=version, user=None, action="promote", reason=f"training run {run.pk}: {metrics['gate']}")
        _run_succeed(run, metrics={**metrics, "data_range": data_range}, policy_version=version)


def _run_succeed(run: TrainingRun, *, metrics: dict, reward_model_version=None, policy_version=None) -> None:
    progress = TrainingRun.objects.values_list("progress", flat=True).get(pk=run.pk) or {}
    updated = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
        status=TrainingRun.Status.SUCCEEDED, metrics=metrics, finished_at=timezone.now(),
        reward_model_version=reward_model_version, policy_version=policy_version, progress={**progress, "phase": "done"},
    )
    if not updated:
        raise RunStopped("the run was failed or cancelled before it could finish")
    events.training_run_changed(run=TrainingRun.objects.get(pk=run.pk))


def _summary(metrics: dict | None) -> dict | None:
    if metrics is None:
        return None
    return {"val_accuracy": metrics.get("accuracy"), "val_loss": metrics.get("loss"), "val_ece": metrics.get("ece"), "n": metrics.get("n")}


@transaction.atomic
def version_activate(*, version: RewardModelVersion | PolicyVersion, user, action: str, reason: str = "") -> None:
    """Make ``version`` the one active version of its kind, in one transaction, with an audit entry.

    ``action`` is "promote" (a candidate goes live) or "rollback" (an earlier version returns).
    Raise VersionPruned for a version whose folder retention removed.
    """
    model = type(version)
    locked = model.objects.select_for_update().get(pk=version.pk)
    if locked.status == VersionStatus.PRUNED:
        raise VersionPruned(f"{locked.name} was pruned from the model store (its checkpoint folder is gone) and cannot be made active")
    previous = model.objects.select_for_update().filter(status=VersionStatus.ACTIVE).exclude(pk=version.pk).first()
    if previous is not None:
        previous.status = VersionStatus.RETIRED
        previous.save(update_fields=["status"])
    locked.status = VersionStatus.ACTIVE
    locked.activated_at = timezone.now()
    locked.save(update_fields=["status", "activated_at"])
    AuditEntry.objects.create(
        actor=user, action=f"{model._meta.model_name}.{action}", target=locked.name,
        details={"previous": previous.name if previous else None, "reason": reason},
    )
    events.version_activated(version=locked, previous=previous)


def policy_ensure_base() -> PolicyVersion:
    """Return the active policy; on first use, write the base generator as version "policy-base" and activate it."""
    active = policy_active()
    if active is not None:
        return active
    base = PolicyVersion.objects.filter(name=BASE_POLICY).first()
    if base is None:
        path, manifest = training_bridge.policy_materialise_base(name=BASE_POLICY)
        folder, gguf_file = training_bridge.generator_source()
        base, _ = PolicyVersion.objects.get_or_create(
            name=BASE_POLICY,
            defaults={
                "path": path, "manifest": manifest, "generator": f"{folder}/{gguf_file}" if gguf_file else folder,
                "sampling": {"temperature": settings.GENERATION_TEMPERATURE, "max_new_tokens": settings.GENERATION_MAX_NEW_TOKENS,
                             "candidates": settings.SUPPLY_CANDIDATES},
                "selection_strategy": settings.SELECTION_STRATEGY,
            },
        )
    with transaction.atomic():
        if policy_active() is None:
            version_activate(version=base, user=None, action="promote", reason="the base generator, on first use")
    return policy_active()
