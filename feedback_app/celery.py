"""The Celery application; configuration comes from Django settings (CELERY_*)."""

import gc
import logging
import os
import sys

from celery import Celery, bootsteps, signals

from feedback_app.worker_stop import stop_flag_raise, stop_flag_share

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_app.settings")

app = Celery("feedback_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["feedback_app"])

logger = logging.getLogger(__name__)
_modules_when_frozen = 0  # how many modules were loaded when this worker last froze its collector's objects


class QueueHeartbeat(bootsteps.StartStopStep):
    """Record every few seconds, from the worker's event loop, that its queues are served.

    A timer in the consumer rather than a beat task per queue: a gpu worker busy with an hour-long
    fit still beats, a worker whose loop hangs stops. Started again after each reconnect, since a
    lost broker connection clears the consumer's timer.
    """

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.tref = None

    def start(self, parent):
        from feedback_app.services.health import HEARTBEAT_INTERVAL, queue_heartbeat_record

        queues = sorted(queue.name for queue in parent.task_consumer.queues)
        queue_heartbeat_record(queues=queues)
        self.tref = parent.timer.call_repeatedly(HEARTBEAT_INTERVAL, queue_heartbeat_record, kwargs={"queues": queues})

    def stop(self, parent):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


app.steps["consumer"].add(QueueHeartbeat)


@signals.worker_init.connect
def worker_threads_wait_asleep(**kwargs) -> str:
    """Have OpenMP's threads (PyTorch's, on a CPU) sleep while they wait for work unless OMP_WAIT_POLICY says otherwise; return
    the policy in force.

    By default a thread that finished its share of an operation spins, waiting for the next. A worker's operations are small
    (a batch of 64 replies, a step of the reward heads) and its cores are shared with the web and the database: there two
    spinning threads burnt 2.2 times a sleeping pair's CPU for the encoder and 3.2 times for a head step, and went slower
    (``bench/thread_wait.py``; bench/README.md, "Session 37"). libgomp reads the variable when it loads, so this is
    connected first, before ``worker_libraries_imported`` imports PyTorch; a worker that does not import them early loads
    it later, in a task.
    """
    return os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@signals.worker_init.connect
def worker_progress_bars_off(**kwargs) -> None:
    """Keep the learning libraries' progress bars out of the worker's log unless the environment says otherwise.

    transformers draws one as it loads a model's weights and another as it unpacks the GGUF policy; through Celery's
    redirected stderr each update is a log line at WARNING (41 of them in ten minutes of ``make run``), and a run's
    progress is on its row and in the cockpit anyway. huggingface_hub and tqdm read these when they are imported, so this
    is connected before ``worker_libraries_imported``. To see the bars, set ``HF_HUB_DISABLE_PROGRESS_BARS=0`` and
    ``TQDM_DISABLE=`` (empty: tqdm takes any text as true).
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")


@signals.worker_init.connect
def worker_priority(**kwargs):
    """Run this worker at WORKER_NICE (`serve` gives the policy worker POLICY_WORKER_NICE, so DPO yields the cores to refits)."""
    from django.conf import settings

    from feedback_app.runtime import priority_lower

    if settings.WORKER_NICE:
        priority_lower(settings.WORKER_NICE)


@signals.worker_init.connect
def worker_libraries_imported(**kwargs) -> bool:
    """With WORKER_IMPORT_LIBRARIES, import the learning libraries (torch, transformers, rm_trainer) before the pool
    forks; return whether it did.

    Every queue's tasks use them (generation, scoring, fits, judges). Imported here, once a worker rather than in
    each pool process at its first model task, the pool processes share them, ``worker_collector_tuned`` freezes
    them with the rest, and the first refit, score or generation after a start does not wait for them (about 3 s
    of CPU). Nothing runs: PyTorch starts its threads at a pool process's first operation, after the fork.
    Connected after ``worker_priority`` (a niced worker imports niced) and before ``worker_collector_tuned``. When
    they fail to import, the error is logged and the worker starts: its tasks that need them fail as they would have.
    """
    from django.conf import settings

    if not settings.WORKER_IMPORT_LIBRARIES:
        return False
    from feedback_app.tasks import libraries_import

    try:
        libraries_import()
    except Exception:  # a broken install fails the model tasks, each with its error; the worker still serves its other tasks
        logger.exception("the learning libraries did not import at the worker's start; each model task will try again")
        return False
    return True


@signals.worker_init.connect
def worker_collector_tuned(**kwargs):
    """Freeze what the worker made at start and collect its young objects less often, as a web process does; forked pool
    processes inherit both."""
    from django.conf import settings

    from feedback_app.request_threads import collector_tuned

    global _modules_when_frozen
    collector_tuned(settings.WORKER_GC_THRESHOLD)
    _modules_when_frozen = len(sys.modules)


@signals.worker_init.connect
def worker_stop_flag_shared(**kwargs) -> None:
    """Map the byte by which this worker's pool processes learn that it is stopping (``worker_stop``), before the pool forks."""
    stop_flag_share()


@signals.worker_shutting_down.connect
def worker_stop_flag_raised(**kwargs) -> None:
    """Tell the pool's tasks that this worker is stopping (Celery sends this from the main process's signal handler: one
    byte written, nothing that could wait or import): a supply round's sampling ends at its next token."""
    stop_flag_raise()


@signals.task_postrun.connect
def collector_settled(**kwargs) -> bool:
    """After a task that imported modules, collect once and freeze what is left; return whether it did.

    A worker's heap is mostly what its imports made (Django, the studio, PyTorch and transformers:
    about 290,000 objects), and each of the collector's full passes walked all of it again
    (130-200 ms a pass, 9-25% of a learning worker's CPU in ``label_load``). Frozen objects are
    left out of those passes; they are still freed when nothing refers to them. Imports are where
    long-lived objects come from, so this runs after the first tasks of each kind and is a length
    check after the others; what the worker made at its start is frozen then
    (``worker_collector_tuned``), the learning libraries with it unless WORKER_IMPORT_LIBRARIES is
    off (then they come with the first model task).
    """
    global _modules_when_frozen
    if len(sys.modules) == _modules_when_frozen:
        return False
    gc.collect()
    gc.freeze()
    _modules_when_frozen = len(sys.modules)
    return True
