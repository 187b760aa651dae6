"""What happens after a write commits: follow-up tasks and pushes to browsers, one way.

A service calls a function here, named for what happened, inside its transaction; the function
only schedules work with ``transaction.on_commit`` (a task enqueued, a fragment pushed), so
nothing is announced or enqueued for a write that rolls back. Events never call a service and
never decide anything: decisions are services, which a task calls. Fragments are rendered by
``feedback_app.live``. The one import upwards is ``_tasks`` below.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from feedback_app import broker, live
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_ID
from feedback_app.selectors import token_cache
from feedback_app.selectors.campaigns import campaign_ids_training

logger = logging.getLogger(__name__)
DASHBOARD_THROTTLE_SECONDS = 2


def _tasks():
    """Return ``feedback_app.tasks``, imported here only (a lazy import, the one upward arrow).

    Services schedule tasks through events, and tasks call services: importing tasks at module
    level would make that circle an import cycle. Everything else in this module points down.
    """
    from feedback_app import tasks

    return tasks


def _enqueue(task_name: str, *args, queue: str | None = None) -> None:
    """Send a task now (to ``queue`` when given, else to its route); a broker that is down is logged,
    never raised to the request that wrote (what was committed stays, and the periodic tasks find
    the work again: the reaper re-sends queued runs, beat restarts supply and scoring)."""
    task = getattr(_tasks(), task_name)
    try:
        if queue is None:
            task.delay(*args)
        else:
            task.apply_async(args, queue=queue)
    except Exception as exc:  # kombu's OperationalError, a refused connection, a timeout
        logger.warning("could not send %s%r to the broker (%s); the periodic tasks will pick it up", task.name, args, exc)


def _group_send(group: str, message: dict) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception as exc:  # Redis down, say: the next (re)connect reads the database anyway
        logger.warning("push to %s failed: %s", group, exc)


def broadcast(group: str, event_type: str, html: str) -> None:
    """Send a fragment to a group of websockets now; a failure is logged, never raised (pushes are hints)."""
    _group_send(group, {"type": event_type, "html": html})


def user_group(user_id: int) -> str:
    """Return the group of every websocket a user holds (told when their access changes)."""
    return f"user.{user_id}"


def user_access_changed(*, user_id: int, session_key: str | None = None) -> None:
    """A user's role or active flag changed, or one of their sessions ended (``session_key``):
    once committed, their open websockets check again and close when they no longer qualify."""
    message = {"type": "access.changed", "session_key": session_key}
    transaction.on_commit(lambda: _group_send(user_group(user_id), message))


def api_credentials_changed() -> None:
    """A token was revoked or deleted, or a user, their role or a membership changed: once committed, every web process
    forgets the tokens it keeps (``selectors.token_cache``): this one at once, the others when the Redis channel tells them.
    Nothing is sent while the cache is off (``API_TOKEN_CACHE_SECONDS=0``, as every process is configured alike)."""
    if settings.API_TOKEN_CACHE_SECONDS > 0:
        transaction.on_commit(_api_credentials_announce)


def _api_credentials_announce() -> None:
    import redis

    token_cache.forget_here()
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.publish(token_cache.CHANNEL, "changed")
        finally:
            client.close()
    except redis.ConnectionError as exc:  # no Redis to reach: no process can be listening to it, so none keeps a token
        logger.debug("no Redis to announce a credential change on (%s)", exc)
    except (redis.RedisError, OSError) as exc:
        logger.warning("could not announce a credential change on Redis (%s): another process that still hears Redis keeps its "
                       "tokens for up to API_TOKEN_CACHE_SECONDS", exc)


def dashboard_group(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> str:
    """The group of a campaign's dashboard sockets ("dashboard" for the default campaign)."""
    return "dashboard" if campaign_id == DEFAULT_CAMPAIGN_ID else f"dashboard.{campaign_id}"


def raters_group(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> str:
    """The group of a campaign's label pages ("raters" for the default campaign): they hear its policy swaps and new comparisons."""
    return "raters" if campaign_id == DEFAULT_CAMPAIGN_ID else f"raters.{campaign_id}"


def dashboard_push(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, charts: bool = False) -> None:
    """Push a campaign's dashboard counters now (the periodic task, labels and swaps call this), and with ``charts`` its charts'
    data too (a swap: the versions' charts and the calibration change with it)."""
    html = live.dashboard_counters_html(campaign_id=campaign_id)
    broadcast(dashboard_group(campaign_id=campaign_id), "dashboard.update", _with_charts(html, campaign_id=campaign_id, charts=charts))


def _with_charts(html: str, *, campaign_id: int, charts: bool) -> str:
    """``html``, followed by the campaign's chart data where ``charts`` (an open dashboard redraws its model charts from it)."""
    return html + live.dashboard_charts_html(campaign_id=campaign_id) if charts else html


def dashboards_push() -> None:
    """Push the counters of every campaign that is not archived (the periodic task: rates decay on screen even when no label arrives)."""
    for campaign_id in campaign_ids_training():
        dashboard_push(campaign_id=campaign_id)


def label_recorded(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> None:
    """A label was recorded: the campaign's dashboards hear of it, at most every DASHBOARD_THROTTLE_SECONDS from each process.

    A worker renders the counters (``tasks.dashboard_push``): the label's request pays for one
    message to the broker now and then, never for the counters' queries.
    """
    if cache.add(f"feedback_app:dashboard-push:{campaign_id}", True, DASHBOARD_THROTTLE_SECONDS):
        transaction.on_commit(lambda: _enqueue("dashboard_push", campaign_id))


def dashboard_push_for_labels(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> bool:
    """The worker's push that labels asked for: at most one per DASHBOARD_THROTTLE_SECONDS from each worker process, however
    many web processes ask (each asks that often), so the counters' reads follow the workers, not the web processes. Return
    whether it pushed."""
    if not cache.add(f"feedback_app:dashboard-pushed:{campaign_id}", True, DASHBOARD_THROTTLE_SECONDS):
        return False
    dashboard_push(campaign_id=campaign_id)
    return True


def training_run_queued(*, run) -> None:
    """Send a queued run to the workers of its kind's queue (``broker.training_run_queue``) once it has committed."""
    run_id, queue = run.pk, broker.training_run_queue(run.kind)
    transaction.on_commit(lambda: _enqueue("training_run_execute", run_id, queue=queue))


def training_run_resend(*, run_id: int, kind: str) -> None:
    """Send a queued run's message again now, to its kind's queue (its first was lost); raise what the broker raises."""
    _tasks().training_run_execute.apply_async((run_id,), queue=broker.training_run_queue(kind))


def reward_score_requested(*, prompt: str, context: list, responses: list, campaign_id: int = DEFAULT_CAMPAIGN_ID):
    """Send a scoring request (by the campaign's active reward model) to the "score" queue now and return its AsyncResult (the caller waits on it)."""
    return _tasks().reward_score.delay(prompt, context, responses, campaign_id)


def policy_generate_requested(*, policy_name: str, prompts: list, seed: int, max_new_tokens: int, temperature: float, mode: str | None = None):
    """Send a request for replies to the "score" queue now and return its AsyncResult (the caller waits on it)."""
    return _tasks().policy_generate.delay(policy_name, prompts, seed, max_new_tokens, temperature, mode)


def _training_run_push(run_id: int, *, charts: bool = False) -> None:
    found = live.training_run_html_by_id(run_id)
    if found is not None:
        html, campaign_id = found
        broadcast(dashboard_group(campaign_id=campaign_id), "run.progress", _with_charts(html, campaign_id=campaign_id, charts=charts))


def training_run_changed(*, run) -> None:
    """A run started, succeeded or failed: dashboards show it once committed, and the charts' data with a success (its version
    is a new point of its line's chart, promoted or not)."""
    run_id, succeeded = run.pk, run.status == run.Status.SUCCEEDED
    transaction.on_commit(lambda: _training_run_push(run_id, charts=succeeded))


def training_run_progress(*, run_id: int) -> None:
    """A running run reported progress (already written, outside any transaction): dashboards show it now."""
    _training_run_push(run_id)


def version_activated(*, version, previous) -> None:
    """A reward model or policy went live in its campaign: workers load it, the campaign's raters and dashboards hear of it."""
    from feedback_app.models import PolicyVersion

    campaign_id = version.campaign_id
    if isinstance(version, PolicyVersion):
        name = version.name

        def announce() -> None:
            broadcast(raters_group(campaign_id=campaign_id), "policy.swapped", live.policy_toast_html(name=name))
            dashboard_push(campaign_id=campaign_id, charts=True)

        transaction.on_commit(announce)
        if previous is not None:
            transaction.on_commit(lambda: _enqueue("comparisons_supply"))
    else:
        transaction.on_commit(lambda: (_enqueue("comparisons_rm_score"), dashboard_push(campaign_id=campaign_id, charts=True)))


def comparisons_supplied(*, count: int, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> None:
    """New comparisons are open in the campaign: its raters looking at an empty queue load one."""
    transaction.on_commit(lambda: broadcast(raters_group(campaign_id=campaign_id), "queue.changed", live.queue_notice_html(campaign_id=campaign_id)))


def comparisons_await_judge(*, comparison_ids: list[int]) -> None:
    """New comparisons wait for a generative judge: a worker on the "judge" queue asks it after commit
    (a lost message is sent again by the judging reaper)."""
    transaction.on_commit(lambda: _enqueue("comparisons_judge", list(comparison_ids)))


def judge_backfill_queued(*, judge_id: int) -> None:
    """An admin asked a judge to measure itself on labelled comparisons: a worker on the "judge" queue does it after commit."""
    transaction.on_commit(lambda: _enqueue("judge_backfill", judge_id))


def import_job_queued(*, job_id: int) -> None:
    """An uploaded file waits to be imported: a worker on the default queue takes it after commit
    (a broker that is down is logged; the import reaper sends the job again)."""
    transaction.on_commit(lambda: _enqueue("import_job_execute", job_id))
