import io
import os
import signal
import sys
import time

import pytest

from feedback_app.supervisor import Backoff, ChildFailedToStart, ChildSpec, Supervisor

SLEEPER = [sys.executable, "-c", "import sys, time; print('up', flush=True); time.sleep(60)"]


def wait_until(condition, *, timeout: float = 20.0, poll=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        if poll is not None:
            poll()
        time.sleep(0.05)


@pytest.fixture
def make_supervisor(tmp_path):
    made = []

    def make(specs, **kwargs):
        options = {"log_dir": tmp_path / "logs", "log_max_bytes": 1 << 20, "log_backups": 2, "grace": 10,
                   "backoff": Backoff(initial=0.2, maximum=1.0, stable_after=60), "console": io.StringIO(), **kwargs}
        supervisor = Supervisor(specs, **options)
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


def test_backoff_doubles_up_to_its_maximum():
    """Crashes in a row wait 1, 2, 4, ... s, never more than the maximum."""
    backoff = Backoff(initial=1, maximum=5)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]


def test_a_killed_child_is_restarted_with_backoff_while_the_others_keep_running(make_supervisor, tmp_path):
    """SIGKILL of one child restarts that child, logged and recorded; the others keep their processes."""
    changes = []
    supervisor = make_supervisor([ChildSpec("redis", SLEEPER), ChildSpec("worker gpu", SLEEPER), ChildSpec("web", SLEEPER)],
                                 on_change=changes.append)
    supervisor.start()
    before = {name: state["pid"] for name, state in supervisor.status().items()}
    wait_until(lambda: "up" in (tmp_path / "logs" / "worker-gpu.log").read_text())

    os.kill(before["worker gpu"], signal.SIGKILL)
    wait_until(lambda: supervisor.status()["worker gpu"]["restarts"] == 1, poll=supervisor.poll)

    status = supervisor.status()
    assert status["worker gpu"]["pid"] != before["worker gpu"] and status["worker gpu"]["running"]
    assert status["worker gpu"]["last_exit"] == -signal.SIGKILL and status["worker gpu"]["last_exit_at"]
    assert {name: state["pid"] for name, state in status.items() if name != "worker gpu"} == {"redis": before["redis"], "web": before["web"]}
    assert all(state["running"] for state in status.values())
    assert changes[-1]["worker gpu"]["restarts"] == 1  # the runtime file hears of it
    log = (tmp_path / "logs" / "serve.log").read_text()
    assert "worker gpu exited with status -9 (SIGKILL)" in log and "restarting in 0.2 s" in log and "worker gpu restarted" in log
    # The new process's output goes to the same log file as the old one's.
    wait_until(lambda: (tmp_path / "logs" / "worker-gpu.log").read_text().count("up") == 2)


def test_a_child_that_keeps_crashing_waits_longer_each_time(make_supervisor, tmp_path):
    """The wait before a restart doubles while the child keeps crashing."""
    supervisor = make_supervisor([ChildSpec("flaky", [sys.executable, "-c", "raise SystemExit(3)"])])
    supervisor.start()
    wait_until(lambda: supervisor.status()["flaky"]["restarts"] >= 3, poll=supervisor.poll)
    log = (tmp_path / "logs" / "serve.log").read_text()
    assert "flaky exited with status 3" in log
    assert "restarting in 0.2 s" in log and "restarting in 0.4 s" in log and "restarting in 0.8 s" in log


def test_child_output_goes_to_the_console_and_a_rotated_log_file(make_supervisor, tmp_path):
    """Each line reaches the console, prefixed with the child's name, and a log file rotated by size."""
    console = io.StringIO()
    chatty = [sys.executable, "-c", "import time\nfor i in range(400): print('line', i, 'x' * 40, flush=True)\ntime.sleep(60)"]
    supervisor = make_supervisor([ChildSpec("chatty", chatty)], log_max_bytes=4096, log_backups=2, console=console)
    supervisor.start()
    logs = tmp_path / "logs"
    wait_until(lambda: "line 399 " in console.getvalue())
    assert "chatty | line 0 " in console.getvalue()
    assert (logs / "chatty.log").stat().st_size <= 4096 and (logs / "chatty.log.2").exists()
    assert not (logs / "chatty.log.3").exists()
    assert "line 399 " in (logs / "chatty.log").read_text()


def test_stop_ends_children_within_the_grace_period_and_kills_only_the_stubborn(make_supervisor, tmp_path):
    """SIGTERM stops a well-behaved child at once; one that ignores it is killed after the grace period, and says so."""
    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"]
    supervisor = make_supervisor([ChildSpec("polite", SLEEPER), ChildSpec("stubborn", stubborn)], grace=1)
    supervisor.start()
    wait_until(lambda: "up" in (tmp_path / "logs" / "stubborn.log").read_text())
    supervisor.stop()
    status = supervisor.status()
    assert not status["polite"]["running"] and not status["stubborn"]["running"]
    log = (tmp_path / "logs" / "serve.log").read_text()
    assert "stubborn did not stop in 1 s; killing it." in log and "polite did not stop" not in log


def test_a_child_that_never_listens_fails_the_start(make_supervisor):
    """A child that exits before listening on its port stops the start with a message that says so."""
    supervisor = make_supervisor([ChildSpec("web", [sys.executable, "-c", "raise SystemExit(2)"], listens=("127.0.0.1", 1), listen_timeout=10)])
    with pytest.raises(ChildFailedToStart, match="exited with status 2 before listening on 127.0.0.1:1"):
        supervisor.start()


def test_a_log_file_that_cannot_be_written_says_so_once_and_recovers(tmp_path, capsys):
    """A full disk makes the log file fail: one line on stderr (no traceback per line), and the
    file is written again once it can be."""
    import errno
    import logging

    from feedback_app.supervisor import _LogFileHandler

    handler = _LogFileHandler(tmp_path / "web.log", maxBytes=1 << 20, backupCount=1)
    logger = logging.Logger("studio.test", logging.INFO)
    logger.addHandler(handler)
    logger.info("before")
    real_open = handler._open

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    handler.stream.close()
    handler.stream = None
    handler._open = full
    for i in range(5):
        logger.info("lost %d", i)
    handler._open = real_open
    logger.info("after")
    handler.close()
    err = capsys.readouterr().err
    assert err.count("cannot write the log file") == 1 and "Traceback" not in err and "is written again" in err
    assert (tmp_path / "web.log").read_text().splitlines() == ["before", "after"]
