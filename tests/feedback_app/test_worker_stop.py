"""The byte by which a worker's pool processes learn that the worker is stopping."""

import os

import pytest
from celery import signals

from feedback_app import celery as studio_celery
from feedback_app import worker_stop


@pytest.fixture
def flag(monkeypatch):
    """The module's flag as this test leaves it: unset again afterwards (a test process is no worker)."""
    monkeypatch.setattr(worker_stop, "_flag", None)


def test_a_pool_process_forked_after_the_share_sees_the_stop_its_main_process_raises(flag):
    """Shared before the fork, the byte the main process writes is the one a forked process reads."""
    worker_stop.stop_flag_share()
    assert worker_stop.worker_stopping() is False
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the pool process: wait to be told to look, then answer what it reads
        try:
            os.read(read, 1)
            os._exit(0 if worker_stop.worker_stopping() else 1)
        finally:
            os._exit(2)
    worker_stop.stop_flag_raise()
    os.write(write, b"x")
    _, status = os.waitpid(child, 0)
    os.close(read), os.close(write)
    assert os.waitstatus_to_exitcode(status) == 0
    assert worker_stop.worker_stopping() is True


def test_outside_a_worker_nothing_is_ever_stopping(flag):
    """A web process or a test never shared the flag: raising it does nothing and nothing reads as stopping."""
    worker_stop.stop_flag_raise()
    assert worker_stop.worker_stopping() is False


def test_a_worker_shares_the_flag_as_it_starts_and_raises_it_as_it_is_asked_to_stop(flag):
    """``worker_init`` (before the pool forks) shares it; ``worker_shutting_down`` (the main process's signal handler) raises
    it. (Called directly: sending the signals would run every receiver, the collector's freeze and the runs' stop with them.)"""
    assert studio_celery.worker_stop_flag_shared in signals.worker_init._live_receivers(None)
    assert studio_celery.worker_stop_flag_raised in signals.worker_shutting_down._live_receivers(None)
    studio_celery.worker_stop_flag_shared(sender=None)
    assert worker_stop.worker_stopping() is False
    studio_celery.worker_stop_flag_raised(sender="default@test", sig="SIGTERM", how="Warm", exitcode=0)
    assert worker_stop.worker_stopping() is True


@pytest.mark.models
@pytest.mark.django_db(transaction=True)
def test_a_worker_asked_to_stop_during_a_supply_round_ends_it_stores_nothing_and_frees_its_prompts(settings, redis_url, tmp_path):
    """A real worker (prefork, as ``serve`` runs it) on the default queue is sent SIGTERM once its round has claimed its
    prompts: the round's sampling (SmolLM2, 8 prompts x 4 replies) stops, nothing is stored, the prompts' claims are given
    back, and the worker exits. Before, it finished the round (about a minute on a busy CPU) past the studio's grace."""
    import signal
    import subprocess
    import sys
    import time

    from feedback_app.models import Comparison, Prompt
    from tests.conftest import child_database_url

    for k in range(8):
        Prompt.objects.create(text=f"My order number {k} has not arrived after two weeks. Where is it and what can you do?")
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": child_database_url(), "SECRET_KEY": settings.SECRET_KEY,
           "VAR_DIR": str(tmp_path), "MODEL_STORE": str(tmp_path / "models"), "SUPPLY_OPEN_TARGET": "8", "SUPPLY_BATCH_PROMPTS": "8",
           "SUPPLY_CANDIDATES": "4", "GENERATION_MAX_NEW_TOKENS": "256", "TORCH_THREADS": "1"}
    log = tmp_path / "worker.err"
    with log.open("wb") as err:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "feedback_app", "worker", "-Q", "default", "-n", "stop-test@%h",
                                   "--concurrency", "1", "--without-mingle", "--without-gossip", "--loglevel", "INFO"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        subprocess.run([sys.executable, "-m", "celery", "-A", "feedback_app", "call", "feedback_app.tasks.comparisons_supply", "--queue", "default"],
                       env=env, check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 120
        while not Prompt.objects.filter(generation_lease_until__isnull=False).exists():
            assert worker.poll() is None and time.monotonic() < deadline, f"the round never claimed its prompts:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    text = log.read_text()
    assert "its round stopped while sampling, and its 8 prompt(s) are given back" in text, text[-3000:]
    assert not Comparison.objects.exists()
    assert not Prompt.objects.filter(generation_lease_until__isnull=False).exists()
    assert "Traceback" not in text, text[-3000:]


def test_the_supply_and_import_tasks_ask_the_flag(monkeypatch):
    """The tasks that can outlast a stop's grace hand the services the flag to ask."""
    from feedback_app import tasks
    from feedback_app.models import Judge
    from feedback_app.services import import_jobs, judge_backfill, supply

    seen = {}
    monkeypatch.setattr(supply, "comparisons_supply", lambda **kwargs: seen.setdefault("supply", kwargs["should_stop"]) and 0)
    monkeypatch.setattr(import_jobs, "import_job_execute", lambda **kwargs: seen.setdefault("import", kwargs["should_stop"]))
    monkeypatch.setattr(judge_backfill, "judge_backfill", lambda **kwargs: seen.setdefault("backfill", kwargs["should_stop"]) and {})
    monkeypatch.setattr(Judge.objects, "filter", lambda **kwargs: type("Found", (), {"first": lambda self: object()})())
    tasks.comparisons_supply.run()
    tasks.import_job_execute.run(7)
    tasks.judge_backfill.run(3)
    assert seen == {"supply": worker_stop.worker_stopping, "import": worker_stop.worker_stopping, "backfill": worker_stop.worker_stopping}
