"""Back-filling a judge: its verdicts on comparisons people labelled already, so it is measured before it labels anything.

Back-filled verdicts are audits like any other (``selectors.judges``); they never become labels.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from feedback_app import events, training_bridge
from feedback_app.models import Judge
from feedback_app.selectors.campaigns import campaign_ids_ai_feedback
from feedback_app.selectors.judges import comparisons_to_backfill
from feedback_app.services.judges import JudgeUnavailable, judge_version_current
from feedback_app.services.verdicts import verdicts_give

logger = logging.getLogger(__name__)
BATCH = 16  # comparisons asked about at once (a generative judge asks twice each, JUDGE_CONCURRENCY at a time)


def judge_backfill(*, judge: Judge, limit: int | None = None, models: training_bridge.ModelHolder | None = None,
                   should_stop: Callable[[], bool] | None = None) -> Counter:
    """Ask an enabled judge about the labelled comparisons of every campaign with AI feedback on that its current version
    there has not judged (at most ``limit`` per campaign); return what it answered ("a", "b", or the reasons it abstained).

    Raise JudgeUnavailable when it is disabled, or cannot judge in any campaign (a reward-model judge
    is skipped in a campaign without an active reward model). ``should_stop()`` answering True between two batches (its
    worker is stopping) ends the back-fill there and queues it again: the next run goes on where this one stopped, since
    what the version judged is skipped.
    """
    if not judge.enabled:
        raise JudgeUnavailable(f"judge {judge.name} is disabled; enable it first")
    answered, unavailable = Counter(), []
    campaign_ids = campaign_ids_ai_feedback()
    for campaign_id in campaign_ids:
        try:
            version = judge_version_current(judge=judge, campaign_id=campaign_id)
        except JudgeUnavailable as exc:
            unavailable.append(exc)
            continue
        todo = comparisons_to_backfill(judge_version_id=version.pk, campaign_id=campaign_id, limit=limit)
        for start in range(0, len(todo), BATCH):
            if should_stop is not None and should_stop():
                logger.info("judge %s: the worker is stopping; the back-fill stops after %d verdicts and is queued again", judge.name,
                            sum(answered.values()))
                events.judge_backfill_queued(judge_id=judge.pk)
                return answered
            verdicts = verdicts_give(judge=judge, comparisons=todo[start:start + BATCH], models=models, backfill=True, campaign_id=campaign_id)
            answered.update(v.choice or v.reason for v in verdicts.values())
    if unavailable and len(unavailable) == len(campaign_ids):
        raise unavailable[0]
    return answered


def judge_backfill_request(*, judge: Judge) -> None:
    """Queue a back-fill of ``judge`` on the judge queue (an admin's action)."""
    if not judge.enabled:
        raise JudgeUnavailable(f"judge {judge.name} is disabled; enable it first")
    events.judge_backfill_queued(judge_id=judge.pk)
