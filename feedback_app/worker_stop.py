"""Whether this worker was asked to stop, as its pool's processes can read it between two steps of a task.

A worker hears a stop in its main process (Celery's ``worker_shutting_down``), while the task that
would outlast the studio's grace (a supply round's generation: a minute or more on a CPU) runs in a
pool process, which Celery tells nothing until that task ends. So the two share one byte: a page of
anonymous shared memory mapped as the worker starts (``worker_init``, before the pool forks, so
every pool process, and any started later, maps the same page). The main process sets it; a task
reads it at no cost, no broker or database round trip, as often as after every sampled token.
"""

from __future__ import annotations

import mmap

_flag: mmap.mmap | None = None  # None outside a worker (a web process, a test): never stopping


def stop_flag_share() -> None:
    """Map the flag, down: call in the worker's main process before its pool forks (a solo pool reads it in place)."""
    global _flag
    _flag = mmap.mmap(-1, 1)  # anonymous and shared: a forked process writes and reads the same byte


def stop_flag_raise() -> None:
    """Say that this worker is stopping (its main process, as it is asked to stop)."""
    if _flag is not None:
        _flag[0] = 1


def worker_stopping() -> bool:
    """Return whether this process's worker was asked to stop."""
    return _flag is not None and _flag[0] == 1
