"""The second promotion gate: human arena votes roll a promoted policy back to its parent when it is clearly worse.

The rule (``arena_rollback_decision``): count the active policy's human arena votes against its
parent, either order. Wins and losses are the decisive votes; ties and "both bad" say neither
reply is better, so they are reported but not counted (they would pull every rate towards 0.5 and
hide a loss). With at least ARENA_MIN_VOTES decisive votes, when the 95% Wilson score interval of
wins / decisive lies entirely below 0.5, the policy goes back to its parent: ``version_activate``
with action "rollback" (its audit entry has no actor and the reason with the counts and the
interval), and the version's metrics["rolled_back"] records why, for the dashboard. Each campaign's
active policy is judged by the votes of that campaign's arena. The base policy (no parent) is never
rolled back, nor a version whose parent is another campaign's (where a campaign started), and a version is rolled back at most once: one a
researcher makes active again afterwards stays, since that was a human decision. A parent
retention pruned cannot return: that is logged and the policy stays.

The check runs after an arena label commits (``arena_ask_after_commit``, from the labeling
service) and on every reap (services.training_recovery), so a check lost with a process comes back.
"""

from __future__ import annotations

import logging
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app.models import DEFAULT_CAMPAIGN_ID, PolicyVersion, VersionStatus
from feedback_app.selectors.arena import arena_record
from feedback_app.selectors.training import policy_active
from feedback_app.services.versions import BASE_POLICY, VersionPruned, version_activate
from feedback_app.stats.ratings import wilson_interval

logger = logging.getLogger(__name__)
LEVEL = 0.95


def arena_rollback_decision(*, wins: int, losses: int, min_votes: int) -> tuple[bool, tuple[float, float] | None]:
    """Return (roll back?, the 95% Wilson interval of wins / (wins + losses), None without decisive votes).

    Roll back when there are at least ``min_votes`` decisive votes and the interval's upper bound is below 0.5.
    """
    interval = wilson_interval(wins, wins + losses, level=LEVEL)
    return wins + losses >= min_votes and interval is not None and interval[1] < 0.5, interval


def arena_ask_after_commit(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> None:
    """Call inside the transaction that records an arena label of the campaign: check its active policy once it
    commits (a failure there is logged; the label stays)."""
    transaction.on_commit(partial(policy_arena_check, campaign_id=campaign_id), robust=True)


def policy_arena_check(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> PolicyVersion | None:
    """Roll the campaign's active policy back to its parent when ``arena_rollback_decision`` says so; return the parent, else None."""
    active = policy_active(campaign_id=campaign_id)
    if active is None or active.parent_id is None or active.name == BASE_POLICY or (active.metrics or {}).get("rolled_back"):
        return None
    parent = active.parent
    if parent.campaign_id != active.campaign_id:
        return None  # where the campaign started from another's model: the parent is not in its line
    record = arena_record(player=active.name, opponent=parent.name)
    rollback, interval = arena_rollback_decision(wins=record["wins"], losses=record["losses"], min_votes=settings.ARENA_MIN_VOTES)
    if not rollback:
        return None
    low, high = interval
    reason = (f"human arena votes against its parent {parent.name}: {record['wins']} wins, {record['losses']} losses "
              f"({record['ties']} ties and {record['both_bad']} both bad not counted); the 95% Wilson interval of its win rate, "
              f"[{low:.3f}, {high:.3f}], lies below 0.5 (at least {settings.ARENA_MIN_VOTES} decisive votes needed)")
    with transaction.atomic():
        locked = PolicyVersion.objects.select_for_update().get(pk=active.pk)
        if locked.status != VersionStatus.ACTIVE or (locked.metrics or {}).get("rolled_back"):
            return None  # another process rolled it back, or someone activated another version meanwhile
        try:
            version_activate(version=parent, user=None, action="rollback", reason=f"{locked.name} rolled back: {reason}")
        except VersionPruned as exc:
            logger.warning("policy %s fails the arena gate but cannot be rolled back: %s", locked.name, exc)
            return None
        locked.metrics = {**(locked.metrics or {}), "rolled_back": {
            **record, "interval": [round(low, 4), round(high, 4)], "min_votes": settings.ARENA_MIN_VOTES, "to": parent.name,
            "at": timezone.now().isoformat(timespec="seconds"), "reason": reason,
        }}
        locked.save(update_fields=["metrics"])
    logger.warning("policy %s rolled back to %s: %s", locked.name, parent.name, reason)
    return parent
