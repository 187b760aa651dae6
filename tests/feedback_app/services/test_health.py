import logging

import redis

from feedback_app.services.health import HEARTBEAT_KEY, queue_heartbeat_record


def test_heartbeat_is_stored_per_queue(settings, redis_url):
    """A worker's heartbeat stamps each of its queues in Redis, with an expiry."""
    settings.REDIS_URL = redis_url
    queue_heartbeat_record(queues=["gpu", "score"], at=1_700_000_000.5)
    client = redis.Redis.from_url(redis_url)
    assert float(client.get(HEARTBEAT_KEY.format(queue="gpu"))) == 1_700_000_000.5
    assert float(client.get(HEARTBEAT_KEY.format(queue="score"))) == 1_700_000_000.5
    assert client.get(HEARTBEAT_KEY.format(queue="default")) is None
    assert client.ttl(HEARTBEAT_KEY.format(queue="gpu")) > 0


def test_heartbeat_without_redis_logs_and_goes_on(settings, caplog):
    """Redis down: the worker's event loop is not interrupted, the miss is logged."""
    from feedback_app.devsupport import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="feedback_app.services.health"):
        queue_heartbeat_record(queues=["gpu"])
    assert "queue heartbeat not recorded" in caplog.text
