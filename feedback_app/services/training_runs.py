"""The life of a training run: request, claim, progress, succeed, fail, and the reaping of lost ones.

A run is queued in one transaction and enqueued after it commits. A worker claims it by
updating its status from "queued" to "running" (a redelivered message finds it claimed and does
nothing), reports progress on the row as it goes, and finishes it with one transaction that
records the new version. A run whose worker dies is failed by the next worker that starts on
that host, or by the periodic reaper once its heartbeat is older than TRAINING_HEARTBEAT_TIMEOUT.
A failed run changes no active version and loses no label. Each run trains one campaign's line; at
most one run of a kind is queued per campaign: asking again returns it. A queued run whose message was lost (a broker restart, say) is sent
again by the reaper (services.training_recovery); the claim makes a duplicate harmless.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Callable

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from feedback_app import events, training_bridge
from feedback_app.models import DEFAULT_CAMPAIGN_ID, AuditEntry, TrainingRun
from feedback_app.training_bridge import RunStopped  # noqa: F401  (the bridge raises it for rm_trainer's cancellations)

logger = logging.getLogger(__name__)

REWARD_KINDS = (TrainingRun.Kind.REWARD_FAST, TrainingRun.Kind.REWARD_FULL)


class TrainingError(Exception):
    """A run that cannot proceed; the message says why and becomes the run's error."""


def training_run_request(*, kind: str, trigger: str, user=None, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> TrainingRun:
    """Return the campaign's queued run of ``kind``, or queue one; it is sent to its kind's queue ("gpu", or "policy" for DPO) once this transaction commits."""
    return training_run_get_or_request(kind=kind, trigger=trigger, user=user, campaign_id=campaign_id)[0]


def training_run_get_or_request(*, kind: str, trigger: str, user=None, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> tuple[TrainingRun, bool]:
    """Return (the campaign's queued run of ``kind``, False), or queue a new one and return (it, True).

    One worker serves every campaign: the queue is first in, first out and holds at most one run of
    a kind per campaign, so campaigns take turns and a campaign's run waits for at most one run of
    each kind of every other campaign.
    """
    if kind not in TrainingRun.Kind.values:
        raise ValueError(f"unknown training run kind {kind!r}; expected one of {', '.join(TrainingRun.Kind.values)}")
    waiting = TrainingRun.objects.filter(campaign_id=campaign_id, kind=kind, status=TrainingRun.Status.QUEUED)
    if (run := waiting.first()) is not None:
        return run, False
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(kind=kind, campaign_id=campaign_id, trigger=trigger, requested_by=user,
                                             enqueued_at=timezone.now(), enqueue_count=1)
            if user is not None:
                AuditEntry.objects.create(actor=user, action="training.request", target=f"run:{run.pk}",
                                          details={"kind": kind, "trigger": trigger, "campaign_id": campaign_id})
            events.training_run_queued(run=run)
    except IntegrityError:
        # Another process queued one a moment ago (one_queued_run_per_campaign_kind): that is the answer.
        run = waiting.first()
        if run is None:
            raise
        return run, False
    return run, True


def training_run_request_auto(*, kind: str, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> TrainingRun | None:
    """Queue an automatic run of ``kind`` for the campaign and return it; None when one was queued already (by this or
    another process: the constraints one_queued_run_per_campaign_kind and one_pending_auto_run_per_campaign_kind)."""
    try:
        with transaction.atomic():
            run, created = training_run_get_or_request(kind=kind, trigger=TrainingRun.Trigger.AUTO, campaign_id=campaign_id)
    except IntegrityError:
        return None  # another process queued it a moment ago
    return run if created else None


def ask_after_commit_every_n_labels(*, label_id: int, every: int, ask: Callable[..., object], campaign_id: int) -> None:
    """Call inside the transaction that records label ``label_id``: on ``every_tenth_label``, call
    ``ask(campaign_id=campaign_id)`` once it commits (a failure there is logged; the label stays)."""
    if every_tenth_label(label_id=label_id, every=every):
        transaction.on_commit(partial(ask, campaign_id=campaign_id), robust=True)


def every_tenth_label(*, label_id: int, every: int) -> bool:
    """Return whether a rule that acts every ``every`` labels should count after label ``label_id``: on every
    tenth of ``every`` labels (never when 0), so the count costs one query per every/10 labels and acts at
    most every/10 labels late."""
    return bool(every) and label_id % max(1, every // 10) == 0


def training_run_claim(*, run_id: int, worker: str) -> TrainingRun | None:
    """Mark a queued run running on ``worker`` and return it; None when it is not queued (any more)."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:255]
    )
    if not claimed:
        return None
    run = TrainingRun.objects.get(pk=run_id)
    events.training_run_changed(run=run)
    return run


def training_run_succeed(*, run: TrainingRun, metrics: dict, reward_model_version=None, policy_version=None) -> None:
    """Record a running run's result (call inside the transaction that records its version); raise RunStopped
    when someone failed or cancelled it meanwhile, which rolls the version back too."""
    progress = TrainingRun.objects.values_list("progress", flat=True).get(pk=run.pk) or {}
    updated = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
        status=TrainingRun.Status.SUCCEEDED, metrics=metrics, finished_at=timezone.now(),
        reward_model_version=reward_model_version, policy_version=policy_version, progress={**progress, "phase": "done"},
    )
    if not updated:
        raise RunStopped("the run was failed or cancelled before it could finish")
    events.training_run_changed(run=TrainingRun.objects.get(pk=run.pk))


def training_run_fail(*, run_id: int, error: str) -> bool:
    """Mark a queued or running run failed; return whether it was."""
    with transaction.atomic():
        updated = TrainingRun.objects.filter(pk=run_id, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).update(
            status=TrainingRun.Status.FAILED, error=error[:20000], finished_at=timezone.now()
        )
        if updated:
            events.training_run_changed(run=TrainingRun.objects.get(pk=run_id))
    return bool(updated)


def training_runs_fail_orphaned(*, worker: str, reason: str = "the worker {worker} stopped while this run was training") -> int:
    """Fail the runs a worker of this name left running when it died (call as it starts), or that it trains as it is asked to
    stop (each ends at its next step); return how many."""
    ids = list(TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, worker=worker).values_list("pk", flat=True))
    return sum(training_run_fail(run_id=pk, error=reason.format(worker=worker)) for pk in ids)


def checkpoints_remove_abandoned() -> int:
    """Delete the half-written checkpoints of runs that are no longer running; return how many."""
    running = {f"{prefix}-{pk:05d}" for pk in TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).values_list("pk", flat=True)
               for prefix in ("rm", "policy")}
    removed = 0
    for name, folder in training_bridge.checkpoint_partials():
        if name not in running and name.rsplit("-", 1)[0] not in running:  # "rm-00007-2": run 7's, its name taken by an older checkpoint
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


class RunMonitor:
    """Write progress and a heartbeat on the run row at most once a second; notice a cancel.

    With ``yield_to``, ``should_stop`` (called between a run's steps) pauses the run while
    ``yield_to()`` answers True, up to ``yield_max`` seconds a pause, keeping its heartbeat and
    showing the pause as its progress: how a DPO run leaves the cores to a reward refit.
    """

    def __init__(self, run_id: int, interval: float = 1.0, *, yield_to: Callable[[], bool] | None = None, yield_max: float = 600.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.run_id = run_id
        self.interval = interval
        self.last_write = 0.0
        self.last_check = 0.0
        self.stopped = False
        self.yield_to, self.yield_max, self.sleep = yield_to, yield_max, sleep
        self.paused_seconds = 0.0
        self.pauses = 0

    def progress(self, event: dict) -> None:
        """Record a progress event from rm_trainer (the final step always; others once per interval)."""
        now = time.monotonic()
        final = event.get("step") == event.get("total_steps")
        if now - self.last_write < self.interval and not final:
            return
        self.last_write = self.last_check = now
        self._write({k: (round(v, 5) if isinstance(v, float) else v) for k, v in event.items() if not isinstance(v, (list, dict))})

    def _write(self, progress: dict) -> None:
        try:
            updated = TrainingRun.objects.filter(pk=self.run_id, status=TrainingRun.Status.RUNNING).update(
                progress=progress, heartbeat_at=timezone.now()
            )
        except OperationalError as exc:  # SQLite's write lock held past its timeout by a long transaction, say
            logger.warning("run %s: its progress was not recorded (%s); it goes on, and writes again at its next report", self.run_id, exc)
            return  # a progress report is a heartbeat, not the run's result: one missed does not cost a fit its work
        self.stopped = not updated
        if updated:
            events.training_run_progress(run_id=self.run_id)

    def should_stop(self) -> bool:
        """Return whether the run is no longer running (failed or cancelled by someone else); checked once per interval."""
        now = time.monotonic()
        if now - self.last_check >= self.interval:
            self.last_check = now
            self.stopped = not TrainingRun.objects.filter(pk=self.run_id, status=TrainingRun.Status.RUNNING).exists()
            if not self.stopped and self.yield_to is not None and self.yield_to():
                self._pause()
        return self.stopped

    def _pause(self) -> None:
        """Wait while ``yield_to()`` answers True (at most ``yield_max`` s), the heartbeat kept; then the run's progress resumes."""
        before = TrainingRun.objects.filter(pk=self.run_id).values_list("progress", flat=True).first() or {}
        started = time.monotonic()
        self.pauses += 1
        self._write({**before, "paused": "waiting for a reward refit to finish"})
        while not self.stopped and time.monotonic() - started < self.yield_max:
            self.sleep(max(self.interval, 0.05))
            if not self.yield_to():
                break
            self._write({**before, "paused": "waiting for a reward refit to finish"})
        self.paused_seconds += time.monotonic() - started
        if not self.stopped:
            self._write(before)
        self.last_check = time.monotonic()
