"""The Celery application; configuration comes from Django settings (CELERY_*)."""

import os

from celery import Celery, bootsteps, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_app.settings")

app = Celery("feedback_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["feedback_app"])


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
def worker_priority(**kwargs):
    """Run this worker at WORKER_NICE (`serve` gives the policy worker POLICY_WORKER_NICE, so DPO yields the cores to refits)."""
    from django.conf import settings

    from feedback_app.runtime import priority_lower

    if settings.WORKER_NICE:
        priority_lower(settings.WORKER_NICE)
