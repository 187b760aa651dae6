"""What happens after a write commits: follow-up tasks and pushes to browsers.

Functions here are called inside a service's transaction and only schedule work with
``transaction.on_commit``, so nothing is announced or enqueued for a write that rolls back.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction


def label_recorded(*, label) -> None:
    """After a label commits: queue a refit when REFIT_EVERY_N_LABELS more labels arrived.

    The count is checked on every tenth of N labels, so the trigger costs one query per
    N/10 labels and fires at most N/10 labels late.
    """
    every = settings.REFIT_EVERY_N_LABELS
    if every and label.pk % max(1, every // 10) == 0:
        transaction.on_commit(_auto_refit)


def _auto_refit() -> None:
    from feedback_app.services.training import training_auto_refit_if_due

    training_auto_refit_if_due()


def training_run_queued(*, run) -> None:
    """Send a queued run to the workers once it has committed."""
    from feedback_app import tasks

    run_id = run.pk
    transaction.on_commit(lambda: tasks.training_run_execute.delay(run_id))


def training_run_changed(*, run) -> None:
    """A run started, succeeded or failed."""


def training_run_progress(*, run_id: int, progress: dict) -> None:
    """A running run reported progress (written outside any transaction)."""


def version_activated(*, version, previous) -> None:
    """A reward model or policy went live: new comparisons should come from it."""
    from feedback_app import tasks
    from feedback_app.models import PolicyVersion

    if isinstance(version, PolicyVersion) and previous is not None:
        transaction.on_commit(lambda: tasks.comparisons_supply.delay())


def comparisons_supplied(*, count: int) -> None:
    """New comparisons are open."""
