"""When a reward refit is due by itself: every REFIT_EVERY_N_LABELS labels since the last version's data.

The labeling service calls ``refit_ask_after_commit`` as it records a label: on every tenth of
N labels (no query to decide) it asks ``training_auto_refit_if_due`` once the label commits, in
the same process (one count query, no task: a task would wait behind generation on the default
queue). The reaper asks the same question periodically, so a trigger lost with a process comes back.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Judge, PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.training_runs import every_tenth_label, training_run_request_auto


def refit_check_due(*, label_id: int) -> bool:
    """Return whether the count of new labels should be checked after label ``label_id`` (every tenth of REFIT_EVERY_N_LABELS)."""
    return every_tenth_label(label_id=label_id, every=settings.REFIT_EVERY_N_LABELS)


def refit_ask_after_commit(*, label_id: int) -> None:
    """Call inside the transaction that records label ``label_id``: when ``refit_check_due``, ask
    ``training_auto_refit_if_due`` once it commits (a failure there is logged; the label stays)."""
    if refit_check_due(label_id=label_id):
        transaction.on_commit(training_auto_refit_if_due, robust=True)


def training_auto_refit_if_due() -> TrainingRun | None:
    """Queue a fast refit when REFIT_EVERY_N_LABELS labels arrived since the last reward version's data."""
    every = settings.REFIT_EVERY_N_LABELS
    if not every:
        return None
    kind = TrainingRun.Kind.REWARD_FAST
    pending = TrainingRun.objects.filter(kind=kind, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])
    if pending.filter(Q(trigger=TrainingRun.Trigger.AUTO) | Q(status=TrainingRun.Status.QUEUED)).exists():
        return None  # the next refit is on its way; it will take these labels too
    if refit_due_labels_count() < every:
        return None
    return training_run_request_auto(kind=kind)


def refit_due_labels_count() -> int:
    """Return the labels that arrived since the newest reward version's data and would train the next one.

    Only the default campaign's count: the reward-model line is its own. A reward-model judge's labels
    never train a reward model (selectors.judges), so they make no refit due.
    """
    newest = RewardModelVersion.objects.order_by("-id").values_list("data_range", flat=True).first() or {}
    last = newest.get("last_label_id") or 0
    return (PreferenceLabel.objects.filter(pk__gt=last, comparison__prompt__campaign_id=DEFAULT_CAMPAIGN_ID)
            .exclude(judge_version__judge__kind=Judge.Kind.REWARD_MODEL).count())
