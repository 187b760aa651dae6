"""What the broker holds: whether a task's message still waits for a worker.

Celery's Redis transport (kombu) keeps a queue's waiting messages in Redis lists named after the
queue (one per priority step) and the messages workers hold but have not acknowledged in the
"unacked" hash, from which they return to the queue if the worker dies. A message in neither
is lost: nobody will run it. Other brokers, and eager mode, cannot be asked: the answer is None.
"""

from __future__ import annotations

import base64
import json
import logging

from django.conf import settings

logger = logging.getLogger(__name__)
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu.transport.redis.PRIORITY_STEPS
PRIORITY_SEPARATOR = "\x06\x16"  # kombu.transport.redis.Channel.sep
SCAN_LIMIT = 2000  # messages read per list; a longer queue is not searched to its end


def task_queue(task: str) -> str:
    """Return the queue CELERY_TASK_ROUTES sends ``task`` to."""
    return settings.CELERY_TASK_ROUTES.get(task, {}).get("queue", settings.CELERY_TASK_DEFAULT_QUEUE)


def training_run_queue(kind: str) -> str:
    """Return the queue a training run of ``kind`` is sent to: TRAINING_RUN_QUEUES, else the task's route ("gpu")."""
    return settings.TRAINING_RUN_QUEUES.get(kind) or task_queue("feedback_app.tasks.training_run_execute")


def task_message_waiting(*, task: str, args: tuple = (), queue: str | None = None) -> bool | None:
    """Return whether a message of ``task`` with ``args`` waits in ``queue`` (default: the task's route)
    or is held by a worker; None if the broker cannot tell."""
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    prefix = options.get("global_keyprefix", "")
    queue = queue or task_queue(task)
    names = [prefix + (f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue) for step in PRIORITY_STEPS]
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.lrange(name, 0, SCAN_LIMIT - 1)
            pipe.hvals(prefix + options.get("unacked_key", "unacked"))
            *lists, unacked = pipe.execute()
        finally:
            client.close()
    except redis.RedisError as exc:
        logger.warning("could not read the queue %r from the broker: %s", queue, exc)
        return None
    held = [_payload(raw, unacked=True) for raw in unacked]
    if any(_is_message_of(m, task, args) for m in [*(_payload(raw) for lst in lists for raw in lst), *held]):
        return True
    return None if any(len(lst) >= SCAN_LIMIT for lst in lists) else False


def _payload(raw: bytes, *, unacked: bool = False) -> dict:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    # An unacknowledged entry is [message, exchange, routing key].
    data = data[0] if unacked and isinstance(data, list) and data else data
    return data if isinstance(data, dict) else {}


def _is_message_of(message: dict, task: str, args: tuple) -> bool:
    headers = message.get("headers") or {}
    if headers.get("task") != task:
        return False
    try:
        body = message.get("body", "")
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return tuple(json.loads(body)[0]) == tuple(args)
    except (ValueError, TypeError, IndexError, KeyError):
        return headers.get("argsrepr") == repr(tuple(args))
