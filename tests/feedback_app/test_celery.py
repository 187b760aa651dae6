"""The Celery application's own additions: the queue heartbeat of every worker."""

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from feedback_app.services.health import HEARTBEAT_KEY
from tests.conftest import child_database_url


@pytest.mark.django_db(transaction=True)
def test_a_worker_stamps_the_heartbeat_of_its_queue(settings, redis_url, tmp_path):
    """A real worker on the gpu queue stamps that queue, and only that one, once it is ready."""
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": child_database_url(), "SECRET_KEY": settings.SECRET_KEY,
           "VAR_DIR": str(tmp_path), "MODEL_STORE": str(tmp_path / "models")}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "feedback_app", "worker", "-Q", "gpu", "-n", "gpu-test@%h", "--pool", "solo",
                               "--without-mingle", "--without-gossip", "--loglevel", "WARNING"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while client.get(HEARTBEAT_KEY.format(queue="gpu")) is None:
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never stamped its queue"
            time.sleep(0.2)
        assert client.get(HEARTBEAT_KEY.format(queue="default")) is None
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
