"""When a policy update (DPO) is due by itself: every POLICY_EVERY_N_LABELS labels, and after a promoted reward model.

Like reward refits (services.auto_refit): the labeling service calls ``policy_ask_after_commit``
as it records a label, which on every tenth of N labels (no query to decide) asks
``policy_auto_update_if_due`` once the label commits; the reaper asks the same question, so a
trigger lost with a process comes back. ``version_activate`` calls
``policy_ask_after_reward_promotion`` when a reward model is promoted. Never two at once: no
automatic run is queued while any DPO run (whatever started it) is queued or running, and the
constraints one_pending_auto_run_per_kind and one_queued_run_per_kind hold across processes.
A run is cancelled like a refit: failing its row stops it (RunMonitor).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from feedback_app.models import DEFAULT_CAMPAIGN_ID, PreferenceLabel, TrainingRun
from feedback_app.services.training_runs import every_tenth_label, training_run_request_auto

logger = logging.getLogger(__name__)
KIND = TrainingRun.Kind.POLICY_DPO


def policy_check_due(*, label_id: int) -> bool:
    """Return whether the count of new labels should be checked after label ``label_id`` (every tenth of N)."""
    return every_tenth_label(label_id=label_id, every=settings.POLICY_EVERY_N_LABELS)


def policy_ask_after_commit(*, label_id: int) -> None:
    """Call inside the transaction that records label ``label_id``: when ``policy_check_due``, ask
    ``policy_auto_update_if_due`` once it commits (a failure there is logged; the label stays)."""
    if policy_check_due(label_id=label_id):
        transaction.on_commit(policy_auto_update_if_due, robust=True)


def policy_ask_after_reward_promotion() -> None:
    """Call inside the transaction that promotes a reward model: when POLICY_AFTER_REWARD_PROMOTION,
    queue a policy update once it commits (the new judge's view of the replies is worth learning from)."""
    if settings.POLICY_AFTER_REWARD_PROMOTION:
        transaction.on_commit(lambda: policy_auto_update_queue(reason="a reward model was promoted"), robust=True)


def policy_update_pending() -> bool:
    """Return whether a DPO run, of any trigger, is queued or running."""
    return TrainingRun.objects.filter(kind=KIND, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).exists()


def policy_labels_since_last_run() -> int:
    """Return the default campaign's labels recorded since the newest DPO run was queued (whatever became of it), or all of them."""
    last = TrainingRun.objects.filter(kind=KIND).order_by("-id").values_list("created_at", flat=True).first()
    labels = PreferenceLabel.objects.filter(comparison__prompt__campaign_id=DEFAULT_CAMPAIGN_ID)
    return (labels.filter(created_at__gt=last) if last else labels).count()


def policy_auto_update_if_due() -> TrainingRun | None:
    """Queue a policy update when POLICY_EVERY_N_LABELS labels arrived since the last DPO run was queued.

    Counting from the last run's request, not its success, means a run that failed (no reward
    model yet, say) is tried again only after another N labels, not on every reap.
    """
    every = settings.POLICY_EVERY_N_LABELS
    if not every or policy_update_pending():
        return None
    if policy_labels_since_last_run() < every:
        return None
    return policy_auto_update_queue(reason=f"{every} labels since the last policy update")


def policy_auto_update_queue(*, reason: str) -> TrainingRun | None:
    """Queue an automatic DPO run unless one is queued or running; return it, or None."""
    if policy_update_pending():
        return None
    run = training_run_request_auto(kind=KIND)
    if run is not None:
        logger.info("policy update queued automatically (run %s): %s", run.pk, reason)
    return run
