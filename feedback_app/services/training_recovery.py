"""Bringing the learning loop back by itself after a worker, a message or a trigger was lost.

The periodic reaper (the beat task training_runs_reap) calls ``training_loop_heal``. Everything
here is a conditional update or a claim, so several beat or worker processes may run it at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from feedback_app import broker, events
from feedback_app.models import TrainingRun
from feedback_app.selectors.campaigns import campaign_ids_training
from feedback_app.services.arena_gate import policy_arena_check
from feedback_app.services.auto_refit import training_auto_refit_if_due
from feedback_app.services.policy_cadence import policy_auto_update_if_due
from feedback_app.services.training_runs import checkpoints_remove_abandoned, training_run_fail, training_runs_reap

logger = logging.getLogger(__name__)
RUN_TASK = "feedback_app.tasks.training_run_execute"


def training_runs_resend_lost(*, now: datetime | None = None) -> int:
    """Send queued runs whose message is gone again; return how many were sent.

    A run is looked at once TRAINING_RESEND_AFTER seconds passed since its last send. When the
    broker shows its message waiting (or held by a worker), it is left alone, however long it
    waits. When the broker cannot tell, it is sent again at doubling intervals (capped at 64 times
    TRAINING_RESEND_AFTER), so a run waiting behind a long one adds a few duplicates, which the
    claim refuses. A run is failed only when sending it failed for TRAINING_RESEND_GIVE_UP seconds.
    """
    now = now or timezone.now()
    after = timedelta(seconds=settings.TRAINING_RESEND_AFTER)
    due = TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - after))
    sent = 0
    for run in list(due.order_by("id")):
        waiting = broker.task_message_waiting(task=RUN_TASK, args=(run.pk,), queue=broker.training_run_queue(run.kind))
        if waiting:
            continue
        if waiting is None and run.enqueued_at and now - run.enqueued_at < after * 2 ** min(max(run.enqueue_count - 1, 0), 6):
            continue
        sent += _training_run_resend(run, now=now)
    return sent


def _training_run_resend(run: TrainingRun, *, now: datetime) -> int:
    # The update is the claim: of several reapers, one sends; a run a worker took meanwhile is skipped.
    claimed = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED, enqueue_count=run.enqueue_count).update(
        enqueued_at=now, enqueue_count=F("enqueue_count") + 1
    )
    if not claimed:
        return 0
    try:
        events.training_run_resend(run_id=run.pk, kind=run.kind)
    except Exception as exc:  # the broker refuses or is unreachable: try again on the next reap
        failing_since = run.enqueue_failed_at or now
        TrainingRun.objects.filter(pk=run.pk, enqueue_failed_at__isnull=True).update(enqueue_failed_at=failing_since)
        logger.warning("training run %s could not be sent again: %s", run.pk, exc)
        if (now - failing_since).total_seconds() >= settings.TRAINING_RESEND_GIVE_UP:
            training_run_fail(run_id=run.pk, error=f"its message was lost and could not be sent again for "
                                                   f"{settings.TRAINING_RESEND_GIVE_UP} s: {type(exc).__name__}: {exc}")
        return 0
    logger.info("training run %s: its message was lost; sent it again (send %s)", run.pk, run.enqueue_count + 1)
    TrainingRun.objects.filter(pk=run.pk, enqueue_failed_at__isnull=False).update(enqueue_failed_at=None)
    return 1


def training_loop_heal(*, now: datetime | None = None) -> dict[str, int]:
    """Fail lost runs, re-send lost messages, clear half-written checkpoints, queue a refit or policy update
    that is due, and apply the arena gate to the active policy."""
    now = now or timezone.now()
    failed = training_runs_reap(now=now)
    resent = training_runs_resend_lost(now=now)
    removed = checkpoints_remove_abandoned()
    # Labels trigger refits after they commit; a trigger lost with a broker comes back from here, for every campaign.
    refits = policies = rolled_back = 0
    for campaign_id in campaign_ids_training():
        refits += training_auto_refit_if_due(campaign_id=campaign_id) is not None
        policies += policy_auto_update_if_due(campaign_id=campaign_id) is not None
        rolled_back += policy_arena_check(campaign_id=campaign_id) is not None
    return {"failed": failed, "resent": resent, "checkpoints_removed": removed, "refits_queued": refits,
            "policy_updates_queued": policies, "policies_rolled_back": rolled_back}
