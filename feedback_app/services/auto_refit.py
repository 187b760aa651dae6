"""When a campaign's reward refit is due by itself: every N of its labels since its last version's data
(the campaign's refit_every_n_labels, by default REFIT_EVERY_N_LABELS).

The labeling service calls ``refit_ask_after_commit`` as it records a label: on every tenth of
N labels (no query to decide) it asks ``training_auto_refit_if_due`` once the label commits, in
the same process (one count query, no task: a task would wait behind generation on the default
queue). The reaper asks the same question periodically, so a trigger lost with a process comes back.
"""

from __future__ import annotations

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Campaign, TrainingRun
from feedback_app.selectors.campaigns import campaign_cached
from feedback_app.selectors.training import reward_labels_unlearned, training_run_pending
from feedback_app.services.training_runs import ask_after_commit_every_n_labels, every_tenth_label, training_run_request_auto


def refit_check_due(*, label_id: int, campaign: Campaign) -> bool:
    """Return whether the count of the campaign's new labels should be checked after label ``label_id`` (every tenth of its N)."""
    return every_tenth_label(label_id=label_id, every=campaign.refit_every)


def refit_ask_after_commit(*, label_id: int, campaign: Campaign) -> None:
    """Call inside the transaction that records label ``label_id`` in ``campaign``: when ``refit_check_due``,
    ask ``training_auto_refit_if_due`` once it commits (a failure there is logged; the label stays)."""
    ask_after_commit_every_n_labels(label_id=label_id, every=campaign.refit_every, ask=training_auto_refit_if_due, campaign_id=campaign.pk)


def training_auto_refit_if_due(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> TrainingRun | None:
    """Queue a fast refit of the campaign's reward model when N of its labels arrived since its last reward version's data."""
    every = campaign_cached(campaign_id=campaign_id).refit_every
    if not every:
        return None
    kind = TrainingRun.Kind.REWARD_FAST
    if training_run_pending(campaign_id=campaign_id, kind=kind, running_only_if_auto=True):
        return None  # the next refit is on its way; it will take these labels too, or ask for the next when it is bounded
    if reward_labels_unlearned(campaign_id=campaign_id, cap=every) < every:
        return None
    return training_run_request_auto(kind=kind, campaign_id=campaign_id)
