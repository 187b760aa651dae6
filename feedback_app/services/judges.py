"""The judges themselves: their current versions, and an admin enabling a remote one."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from feedback_app.models import DEFAULT_CAMPAIGN_ID, AuditEntry, Judge, JudgeVersion
from feedback_app.selectors.training import reward_model_active


class JudgeUnavailable(Exception):
    """A judge that cannot judge now; the message says why (no active reward model, no endpoint, no model folder)."""


def judge_version_current(*, judge: Judge, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> JudgeVersion:
    """Return the version the judge's verdicts on the campaign's comparisons are stored with now, made on first use.

    The reward-model judge's version is the campaign's active reward model's name, so a promotion
    starts a new version (and a fresh verdict cache); the others use the version an admin gives them.
    """
    if judge.kind == Judge.Kind.REWARD_MODEL:
        reward = reward_model_active(campaign_id=campaign_id)
        if reward is None:
            raise JudgeUnavailable("the reward-model judge needs an active reward model in the campaign")
        version = reward.name
    else:
        version = judge.version or "1"
    return JudgeVersion.objects.get_or_create(judge=judge, version=version)[0]


@transaction.atomic
def judge_remote_enable(*, judge: Judge, user) -> Judge:
    """Enable a remote judge on an admin's word (they were shown the off-machine warning); recorded in the audit log."""
    if judge.kind != Judge.Kind.REMOTE:
        raise ValueError(f"{judge.name} is not a remote judge")
    judge.enabled, judge.remote_enabled_by, judge.remote_enabled_at = True, user, timezone.now()
    judge.save(update_fields=["enabled", "remote_enabled_by", "remote_enabled_at"])
    AuditEntry.objects.create(actor=user, action="judge.remote_enable", target=f"judge:{judge.pk}", details={"name": judge.name})
    return judge
