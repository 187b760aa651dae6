"""Worker heartbeats: each worker notes, every few seconds, that its queues are served."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.conf import settings

from feedback_app.selectors.health import HEARTBEAT_KEY

logger = logging.getLogger(__name__)
HEARTBEAT_INTERVAL = 10.0  # seconds; HEALTH_HEARTBEAT_MAX_AGE must be a few of these
HEARTBEAT_KEEP = 24 * 3600  # a queue nobody serves any more drops out after a day


def queue_heartbeat_record(*, queues: Iterable[str], at: float | None = None) -> None:
    """Store that a worker serving ``queues`` is alive at ``at`` (now); log and go on when Redis does not answer."""
    import redis

    stamp = time.time() if at is None else at
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.set(HEARTBEAT_KEY.format(queue=queue), repr(stamp), ex=HEARTBEAT_KEEP)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning("queue heartbeat not recorded: %s", exc)
