"""The queue's head as this process last read it, per campaign: where the lease's pick starts its walks
(``selectors.labeling.comparison_leasable_statements``)."""

from __future__ import annotations

import time

# How long a process walks the queue from the head it last read (``queue_head_hint``) before it reads the head from the
# queue's start again: for so long at most, a comparison that reopened behind the head comes after the ones after it.
HEAD_HINT_SECONDS = 2.0

_heads: dict[int, tuple[int, float]] = {}  # campaign id -> (the head last read, time.monotonic() of the last read from 0)


def queue_head_hint(campaign_id: int, *, exact: bool = False) -> int:
    """Return the id the pick's walks start from (``comparison_leasable_statements``): the campaign's queue head this process
    last read (``queue_head_seen``), or 0, the queue's start, with ``exact``, before any read, and once its last read from 0
    is ``HEAD_HINT_SECONDS`` old.

    On PostgreSQL a completed comparison's entry stays in the queue's index until a vacuum, and while a snapshot that saw it
    open is held (a backup's ``pg_dump``, a long report) no scan may mark it dead: a walk from the queue's start visited
    every comparison completed since the snapshot began, and its row, twice a pick (about 0.2 ms more a pick for each
    1,000: bench/README, sessions 43 and 44). From the head last read, a walk visits those completed since.

    The head moves back only where a comparison behind it reopens (an undo, a gold pair, a verdict that sends one to
    people): the process that reopens it forgets the head (``queue_head_forget``), the others read it from 0 again within
    ``HEAD_HINT_SECONDS``, and a pick that finds nothing from the head is followed by an ``exact`` one, from 0.
    """
    kept = _heads.get(campaign_id)
    if exact or kept is None or time.monotonic() - kept[1] > HEAD_HINT_SECONDS:
        return 0
    return kept[0]


def queue_head_seen(campaign_id: int, head: int | None, *, hint: int) -> None:
    """Keep ``head``, read by a pick that walked from ``hint`` (``queue_head_hint``); a read from 0 starts the hint's time."""
    if head is None:
        return
    kept = _heads.get(campaign_id)
    if hint == 0 or kept is not None:
        _heads[campaign_id] = (head, time.monotonic() if hint == 0 else kept[1])


def queue_head_forget(campaign_id: int | None = None) -> None:
    """Make this process's next pick in the campaign (None: every campaign) read the queue's head from its start: a comparison
    behind the head reopens. (A pick of another thread before the reopening commits may read the head without it; the
    next read from the start, within ``HEAD_HINT_SECONDS``, has it.)"""
    if campaign_id is None:
        _heads.clear()
    else:
        _heads.pop(campaign_id, None)
