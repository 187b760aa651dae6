"""Free ports, waiting for a listener, and the scratch Redis that tests and benches start."""

import socket
import subprocess
import sys

import pytest
import redis
from django.core.management import CommandError

from feedback_app.devsupport import free_port, redis_server_command, scratch_redis_start, wait_for_port


def test_free_port_can_be_bound_at_once():
    """The port returned is free: binding it succeeds."""
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        assert sock.getsockname()[1] == port


def test_wait_for_port_returns_once_something_listens():
    """A listening socket ends the wait."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_for_port("127.0.0.1", server.getsockname()[1], timeout=5)


def test_wait_for_port_names_a_process_that_died_before_listening():
    """A child that exits before it listens is reported with its exit status."""
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(CommandError, match="exited with status 3 before listening"):
        wait_for_port("127.0.0.1", free_port(), timeout=30, process=process)


def test_wait_for_port_gives_up_after_the_timeout():
    """Nothing listening: a CommandError naming the address."""
    port = free_port()
    with pytest.raises(CommandError, match=f"nothing listens on 127.0.0.1:{port}"):
        wait_for_port("127.0.0.1", port, timeout=0.3)


def test_redis_server_command_binds_loopback_on_the_port_and_dir(tmp_path):
    """The embedded Redis listens on loopback only, on the given port, keeping its file in data_dir."""
    command = redis_server_command(port=6390, data_dir=tmp_path)
    assert command[command.index("--bind") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "6390"
    assert command[command.index("--dir") + 1] == str(tmp_path)
    assert command[command.index("--stop-writes-on-bgsave-error") + 1] == "no"


def test_scratch_redis_answers_and_stops(tmp_path):
    """The scratch Redis takes commands at the URL returned, and the caller can stop it."""
    process, url = scratch_redis_start(tmp_path / "redis")
    try:
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert (tmp_path / "redis").is_dir()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode is not None
