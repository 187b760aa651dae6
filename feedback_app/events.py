"""What happens after a write commits: follow-up tasks and pushes to browsers.

Functions here are called inside a service's transaction and only schedule work with
``transaction.on_commit``, so nothing is announced or enqueued for a write that rolls back.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)
DASHBOARD_THROTTLE_SECONDS = 2


def broadcast(group: str, event_type: str, html: str) -> None:
    """Send a fragment to a group of websockets now; a failure is logged, never raised (pushes are hints)."""
    _group_send(group, {"type": event_type, "html": html})


def _group_send(group: str, message: dict) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception as exc:  # Redis down, say: the next (re)connect reads the database anyway
        logger.warning("push to %s failed: %s", group, exc)


def user_group(user_id: int) -> str:
    """Return the group of every websocket a user holds (told when their access changes)."""
    return f"user.{user_id}"


def user_access_changed(*, user_id: int, session_key: str | None = None) -> None:
    """A user's role or active flag changed, or one of their sessions ended (``session_key``):
    once committed, their open websockets check again and close when they no longer qualify."""
    message = {"type": "access.changed", "session_key": session_key}
    transaction.on_commit(lambda: _group_send(user_group(user_id), message))


def _push_dashboard() -> None:
    from feedback_app.views import live

    broadcast("dashboard", "dashboard.update", live.dashboard_counters_html())


def dashboard_refresh() -> None:
    """Push the dashboard's counters now (the periodic task calls this)."""
    _push_dashboard()


def label_recorded(*, label) -> None:
    """After a label commits: queue a refit when REFIT_EVERY_N_LABELS more labels arrived.

    The count is checked on every tenth of N labels, so the trigger costs one query per
    N/10 labels and fires at most N/10 labels late.
    """
    every = settings.REFIT_EVERY_N_LABELS
    if every and label.pk % max(1, every // 10) == 0:
        transaction.on_commit(_auto_refit)
    # Dashboards hear of labels at most every DASHBOARD_THROTTLE_SECONDS from each process.
    if cache.add("feedback_app:dashboard-push", True, DASHBOARD_THROTTLE_SECONDS):
        transaction.on_commit(_push_dashboard)


def _auto_refit() -> None:
    from feedback_app.services.training import training_auto_refit_if_due

    training_auto_refit_if_due()


def _enqueue(task, *args) -> None:
    """Send a task now; a broker that is down is logged, never raised to the request that wrote
    (what was committed stays, and the periodic tasks find the work again: the reaper re-sends
    queued runs, beat restarts supply and scoring)."""
    try:
        task.delay(*args)
    except Exception as exc:  # kombu's OperationalError, a refused connection, a timeout
        logger.warning("could not send %s%r to the broker (%s); the periodic tasks will pick it up", task.name, args, exc)


def training_run_queued(*, run) -> None:
    """Send a queued run to the workers once it has committed."""
    from feedback_app import tasks

    run_id = run.pk
    transaction.on_commit(lambda: _enqueue(tasks.training_run_execute, run_id))


def training_run_resend(*, run_id: int) -> None:
    """Send a queued run's message again now (its first was lost); raise what the broker raises."""
    from feedback_app import tasks

    tasks.training_run_execute.delay(run_id)


def _push_run(run_id: int) -> None:
    from feedback_app.models import TrainingRun
    from feedback_app.views import live

    run = TrainingRun.objects.select_related("reward_model_version", "policy_version").filter(pk=run_id).first()
    if run is not None:
        broadcast("dashboard", "run.progress", live.training_run_html(run))


def training_run_changed(*, run) -> None:
    """A run started, succeeded or failed: dashboards show it once committed."""
    run_id = run.pk
    transaction.on_commit(lambda: _push_run(run_id))


def training_run_progress(*, run_id: int, progress: dict) -> None:
    """A running run reported progress (already written, outside any transaction)."""
    _push_run(run_id)


def version_activated(*, version, previous) -> None:
    """A reward model or policy went live: workers load it, raters and dashboards hear of it."""
    from feedback_app import tasks
    from feedback_app.models import PolicyVersion

    if isinstance(version, PolicyVersion):
        name = version.name

        def announce() -> None:
            from feedback_app.views import live

            broadcast("raters", "policy.swapped", live.policy_toast_html(name=name))
            _push_dashboard()

        transaction.on_commit(announce)
        if previous is not None:
            transaction.on_commit(lambda: _enqueue(tasks.comparisons_supply))
    else:
        transaction.on_commit(lambda: (_enqueue(tasks.comparisons_rm_score), _push_dashboard()))


def comparisons_supplied(*, count: int) -> None:
    """New comparisons are open: raters looking at an empty queue load one."""

    def announce() -> None:
        from feedback_app.views import live

        broadcast("raters", "queue.changed", live.queue_notice_html())

    transaction.on_commit(announce)


def import_job_queued(*, job_id: int) -> None:
    """An uploaded file waits to be imported: a worker on the default queue takes it after commit."""
    from feedback_app import tasks

    transaction.on_commit(lambda: tasks.import_job_execute.delay(job_id))
