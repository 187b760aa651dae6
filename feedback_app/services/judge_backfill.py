"""Back-filling a judge: its verdicts on comparisons people labelled already, so it is measured before it labels anything.

Back-filled verdicts are audits like any other (``selectors.judges``); they never become labels.
"""

from __future__ import annotations

from collections import Counter

from feedback_app import events, training_bridge
from feedback_app.models import Judge
from feedback_app.selectors.judges import comparisons_to_backfill
from feedback_app.services.judges import JudgeUnavailable, judge_version_current
from feedback_app.services.verdicts import verdicts_give

BATCH = 16  # comparisons asked about at once (a generative judge asks twice each, JUDGE_CONCURRENCY at a time)


def judge_backfill(*, judge: Judge, limit: int | None = None, models: training_bridge.ModelHolder | None = None) -> Counter:
    """Ask an enabled judge about the labelled comparisons its current version has not judged; return what it answered
    ("a", "b", or the reasons it abstained). Raise JudgeUnavailable when it is disabled or cannot judge."""
    if not judge.enabled:
        raise JudgeUnavailable(f"judge {judge.name} is disabled; enable it first")
    version = judge_version_current(judge=judge)
    todo = comparisons_to_backfill(judge_version_id=version.pk, limit=limit)
    answered = Counter()
    for start in range(0, len(todo), BATCH):
        verdicts = verdicts_give(judge=judge, comparisons=todo[start:start + BATCH], models=models, backfill=True)
        answered.update(v.choice or v.reason for v in verdicts.values())
    return answered


def judge_backfill_request(*, judge: Judge) -> None:
    """Queue a back-fill of ``judge`` on the judge queue (an admin's action)."""
    if not judge.enabled:
        raise JudgeUnavailable(f"judge {judge.name} is disabled; enable it first")
    events.judge_backfill_queued(judge_id=judge.pk)
