"""When a campaign's policy update (DPO) is due by itself: every N of its labels (its policy_every_n_labels, by
default POLICY_EVERY_N_LABELS), and after a promoted reward model of its line.

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

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Campaign, PreferenceLabel, TrainingRun
from feedback_app.selectors.campaigns import campaign_cached
from feedback_app.selectors.training import reward_model_live, training_run_pending
from feedback_app.services.training_runs import ask_after_commit_every_n_labels, every_tenth_label, training_run_request_auto

logger = logging.getLogger(__name__)
KIND = TrainingRun.Kind.POLICY_DPO


def policy_check_due(*, label_id: int, campaign: Campaign) -> bool:
    """Return whether the count of the campaign's new labels should be checked after label ``label_id`` (every tenth of its N)."""
    return every_tenth_label(label_id=label_id, every=campaign.policy_every)


def policy_ask_after_commit(*, label_id: int, campaign: Campaign) -> None:
    """Call inside the transaction that records label ``label_id`` in ``campaign``: when ``policy_check_due``,
    ask ``policy_auto_update_if_due`` once it commits (a failure there is logged; the label stays)."""
    ask_after_commit_every_n_labels(label_id=label_id, every=campaign.policy_every, ask=policy_auto_update_if_due, campaign_id=campaign.pk)


def policy_ask_after_reward_promotion(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> None:
    """Call inside the transaction that promotes a campaign's reward model: when POLICY_AFTER_REWARD_PROMOTION, queue
    a policy update of its line once it commits (the new judge's view of the replies is worth learning from)."""
    if settings.POLICY_AFTER_REWARD_PROMOTION:
        transaction.on_commit(lambda: policy_auto_update_queue(reason="a reward model was promoted", campaign_id=campaign_id), robust=True)


def policy_update_pending(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> bool:
    """Return whether a DPO run of the campaign, of any trigger, is queued or running."""
    return training_run_pending(campaign_id=campaign_id, kind=KIND)


def policy_labels_since_last_run(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, cap: int | None = None) -> int:
    """Return the campaign's labels recorded since its newest DPO run was queued (whatever became of it), or all of them,
    counting at most ``cap``: the question is whether N arrived, and its cost stays that of N however long the wait."""
    last = TrainingRun.objects.filter(campaign_id=campaign_id, kind=KIND).order_by("-id").values_list("created_at", flat=True).first()
    labels = PreferenceLabel.objects.filter(campaign_id=campaign_id)
    labels = labels.filter(created_at__gt=last) if last else labels
    return (labels[:cap] if cap else labels).count()


def policy_auto_update_if_due(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> TrainingRun | None:
    """Queue a policy update of the campaign when N of its labels arrived since its last DPO run was queued, and the
    campaign has an active reward model (a DPO run without one fails at once: at a busy studio that was a failed run
    every N labels, each a row in the cockpit's runs, until the first refit went live).

    Counting from the last run's request, not its success, means a run that failed (no decided
    comparison yet, say) is tried again only after another N labels, not on every reap.
    """
    every = campaign_cached(campaign_id=campaign_id).policy_every
    if not every or policy_update_pending(campaign_id=campaign_id) or not reward_model_live(campaign_id=campaign_id):
        return None
    if policy_labels_since_last_run(campaign_id=campaign_id, cap=every) < every:
        return None
    return policy_auto_update_queue(reason=f"{every} labels since the last policy update", campaign_id=campaign_id)


def policy_auto_update_queue(*, reason: str, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> TrainingRun | None:
    """Queue an automatic DPO run of the campaign unless one is queued or running; return it, or None."""
    if policy_update_pending(campaign_id=campaign_id):
        return None
    run = training_run_request_auto(kind=KIND, campaign_id=campaign_id)
    if run is not None:
        logger.info("policy update queued automatically (run %s, campaign %s): %s", run.pk, campaign_id, reason)
    return run
