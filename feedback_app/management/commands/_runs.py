"""Shared by the commands that queue a training run and may wait for it."""

import time

from django.core.management.base import CommandError

from feedback_app.models import TrainingRun

TERMINAL = (TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED)


def wait_for_run(command, run: TrainingRun, *, timeout: float, poll: float = 1.0) -> TrainingRun:
    """Print the run's progress until it ends; raise CommandError if it fails or takes too long."""
    deadline = time.monotonic() + timeout
    last = None
    warned = False
    while True:
        run.refresh_from_db()
        line = f"run {run.pk}: {run.status}"
        if run.progress:
            p = run.progress
            line += f" · {p.get('phase', '')} {p.get('step', '')}/{p.get('total_steps', '')}"
            if isinstance(p.get("loss"), (int, float)):
                line += f" loss {p['loss']:.4f}"
        if line != last:
            command.stdout.write(line)
            last = line
        if run.status in TERMINAL:
            break
        if run.status == TrainingRun.Status.QUEUED and not warned and time.monotonic() > deadline - timeout + 30:
            command.stderr.write("still queued after 30 s: is a worker consuming the 'gpu' queue? (make run starts one)")
            warned = True
        if time.monotonic() > deadline:
            raise CommandError(f"run {run.pk} did not finish within {timeout:.0f} s (it is {run.status}); it goes on in the background")
        time.sleep(poll)
    if run.status == TrainingRun.Status.FAILED:
        raise CommandError(f"run {run.pk} failed: {run.error.splitlines()[0] if run.error else 'no reason recorded'}")
    return run
