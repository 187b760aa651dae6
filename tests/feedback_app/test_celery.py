"""The Celery application's own additions: the queue heartbeat of every worker, and its collector frozen after imports."""

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
    """A real worker on the gpu queue stamps that queue, and only that one, once it is ready; OpenMP, loaded with the
    libraries at its start, found its threads told to sleep while they wait (libgomp prints what it read)."""
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": child_database_url(), "SECRET_KEY": settings.SECRET_KEY,
           "VAR_DIR": str(tmp_path), "MODEL_STORE": str(tmp_path / "models"), "OMP_DISPLAY_ENV": "TRUE", "WORKER_IMPORT_LIBRARIES": "1"}
    env.pop("OMP_WAIT_POLICY", None)
    log = tmp_path / "worker.err"
    with log.open("wb") as err:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "feedback_app", "worker", "-Q", "gpu", "-n", "gpu-test@%h", "--pool", "solo",
                                   "--without-mingle", "--without-gossip", "--loglevel", "WARNING"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=err, start_new_session=True)
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while client.get(HEARTBEAT_KEY.format(queue="gpu")) is None:
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never stamped its queue"
            time.sleep(0.2)
        assert client.get(HEARTBEAT_KEY.format(queue="default")) is None
        assert "OMP_WAIT_POLICY = 'PASSIVE'" in log.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


@pytest.fixture
def frozen_undone():
    """Give the test process's collector back as it was: every object frozen by the test is unfrozen."""
    import gc

    yield
    gc.unfreeze()


def test_after_a_task_that_imported_modules_the_collector_freezes_what_is_left_once(frozen_undone, monkeypatch):
    """The first task after imports collects (garbage in a cycle goes) and freezes the rest; the next one, with no import, does neither."""
    import gc
    import types
    import weakref

    from celery import signals

    from feedback_app import celery as studio_celery

    class Node:
        pass

    cycle = Node()
    cycle.me = cycle
    gone = weakref.ref(cycle)
    del cycle
    # The module table as the receiver sees it, apart from the real one: a thread an earlier test left behind may import
    # a module between the two calls below.
    modules = types.SimpleNamespace(modules=dict(sys.modules))
    monkeypatch.setattr(studio_celery, "sys", modules)
    monkeypatch.setattr(studio_celery, "_modules_when_frozen", len(modules.modules))
    modules.modules["feedback_app_test_imported_late"] = types.ModuleType("feedback_app_test_imported_late")
    frozen_before = gc.get_freeze_count()
    assert studio_celery.collector_settled in signals.task_postrun._live_receivers(None)  # a worker sends it after each task
    assert studio_celery.collector_settled() is True
    assert gone() is None
    frozen = gc.get_freeze_count()
    assert frozen > frozen_before
    # The count of frozen objects falls whenever one of them is freed (a thread an earlier test left behind may free some),
    # so the second call is watched directly: it neither collects nor freezes.
    called = []
    monkeypatch.setattr(studio_celery, "gc", types.SimpleNamespace(collect=lambda: called.append("collect"),
                                                                   freeze=lambda: called.append("freeze")))
    assert studio_celery.collector_settled() is False
    assert called == []


def test_a_worker_at_start_freezes_what_it_made_and_collects_young_objects_less_often(frozen_undone, settings, monkeypatch):
    """``worker_init`` (sent before the pool forks, so its processes inherit it) tunes the collector as a web process's is."""
    import gc
    import types

    from celery import signals

    from feedback_app import celery as studio_celery

    monkeypatch.setattr(studio_celery, "sys", types.SimpleNamespace(modules=dict(sys.modules)))  # as in the test above
    monkeypatch.setattr(studio_celery, "_modules_when_frozen", 0)
    settings.WORKER_GC_THRESHOLD = 12345
    threshold = gc.get_threshold()
    try:
        assert studio_celery.worker_collector_tuned in signals.worker_init._live_receivers(None)
        studio_celery.worker_collector_tuned()
        assert gc.get_threshold() == (12345, *threshold[1:])
        assert gc.get_freeze_count() > 0
        assert studio_celery.collector_settled() is False  # nothing imported since
    finally:
        gc.set_threshold(*threshold)


def test_a_worker_imports_the_learning_libraries_at_start_after_its_priority_and_before_its_collector_is_tuned(settings, monkeypatch):
    """``worker_init`` receivers run in the order they were connected: OpenMP's wait policy and the priority first, then the
    imports, then the freeze."""
    from celery import signals

    from feedback_app import celery as studio_celery
    from feedback_app import tasks

    receivers = signals.worker_init._live_receivers(None)
    order = [receivers.index(r) for r in (studio_celery.worker_threads_wait_asleep, studio_celery.worker_priority,
                                          studio_celery.worker_libraries_imported, studio_celery.worker_collector_tuned)]
    assert order == sorted(order)
    imported = []
    monkeypatch.setattr(tasks, "libraries_import", lambda: imported.append(True) or ["BertModel"])
    settings.WORKER_IMPORT_LIBRARIES = False
    assert studio_celery.worker_libraries_imported() is False and imported == []
    settings.WORKER_IMPORT_LIBRARIES = True
    assert studio_celery.worker_libraries_imported() is True and imported == [True]


def test_a_worker_s_log_gets_no_progress_bars_from_the_learning_libraries():
    """Connected before the libraries' import, and set before they read it: in a fresh process, as in a worker, transformers'
    bars (weights loading) and tqdm's (the GGUF policy's unpacking) are off; an environment that says otherwise wins."""
    from celery import signals

    from feedback_app import celery as studio_celery

    receivers = signals.worker_init._live_receivers(None)
    assert receivers.index(studio_celery.worker_progress_bars_off) < receivers.index(studio_celery.worker_libraries_imported)
    probe = ("from feedback_app.celery import worker_progress_bars_off; worker_progress_bars_off(); "
             "import tqdm.auto, transformers.utils.logging as t; print(tqdm.auto.tqdm(range(2)).disable, t.is_progress_bar_enabled())")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE")}
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["True", "False"]
    run = subprocess.run([sys.executable, "-c", probe], env={**env, "HF_HUB_DISABLE_PROGRESS_BARS": "0", "TQDM_DISABLE": ""},
                         capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False", "True"]


def test_the_bridge_imports_the_reward_backbones_model_class():
    from feedback_app.tasks import libraries_import

    assert libraries_import() == ["BertModel"]


def test_a_worker_whose_libraries_fail_to_import_logs_why_and_starts(settings, monkeypatch, caplog):
    from feedback_app import celery as studio_celery
    from feedback_app import tasks

    def broken():
        raise ImportError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(tasks, "libraries_import", broken)
    settings.WORKER_IMPORT_LIBRARIES = True
    with caplog.at_level("ERROR", logger="feedback_app.celery"):
        assert studio_celery.worker_libraries_imported() is False
    assert "did not import at the worker's start" in caplog.text and "libtorch_cpu.so" in caplog.text


def test_a_worker_s_openmp_threads_sleep_while_they_wait_unless_told_otherwise(monkeypatch):
    from feedback_app import celery as studio_celery

    monkeypatch.setenv("OMP_WAIT_POLICY", "")  # recorded, so the one the receiver sets goes with the test
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert studio_celery.worker_threads_wait_asleep() == "PASSIVE" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert studio_celery.worker_threads_wait_asleep() == "ACTIVE"
