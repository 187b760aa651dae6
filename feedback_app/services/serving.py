"""How a policy version answers: its serving mode (the two policy tiers), the reward model that reranks, and changing the mode.

A policy improves in two tiers. *Trained*: DPO makes a new version with a parent. *Rerank*: a
serving mode of a version, the best of RERANK_SAMPLES sampled replies by the active reward model;
it follows each promoted reward model without a new version, so the arena's votes keep
accumulating on the trained version. "sample" answers with one sampled reply.
"""

from __future__ import annotations

from typing import NamedTuple

from django.db import transaction

from feedback_app.models import AuditEntry, PolicyVersion, RewardModelVersion, ServingMode
from feedback_app.selectors.training import reward_model_active


class RerankUnavailable(Exception):
    """Rerank was asked for while no reward model is active to choose among the samples."""


class ServingModeInvalid(ValueError):
    """The serving mode named is neither "sample" nor "rerank"."""


class Serving(NamedTuple):
    """The mode a version answers in now, and the reward model that reranks (None when sampling)."""

    mode: str
    reward: RewardModelVersion | None


def policy_serving(*, version: PolicyVersion, mode: str | None = None) -> Serving:
    """Return how ``version`` answers: in ``mode``, else in its own serving mode; rerank uses its campaign's active reward model.

    A version whose own mode is rerank samples while no reward model is active; a rerank asked
    for explicitly then raises RerankUnavailable. An unknown ``mode`` raises ServingModeInvalid.
    """
    wanted = version.serving_mode if mode is None else mode
    if wanted not in ServingMode.values:
        raise ServingModeInvalid(f"a serving mode is one of {', '.join(ServingMode.values)}, got {wanted!r}")
    if wanted == ServingMode.SAMPLE:
        return Serving(mode=ServingMode.SAMPLE.value, reward=None)
    reward = reward_model_active(campaign_id=version.campaign_id)
    if reward is None:
        if mode is not None:
            raise RerankUnavailable("rerank needs an active reward model to choose the best reply, and none is active yet; "
                                    "train one first or ask for mode \"sample\"")
        return Serving(mode=ServingMode.SAMPLE.value, reward=None)
    return Serving(mode=ServingMode.RERANK.value, reward=reward)


@transaction.atomic
def version_serving_mode_set(*, version: PolicyVersion, mode: str, user, reason: str = "") -> bool:
    """Serve policy ``version`` in ``mode`` from its next reply on, with an audit entry; return False when it already was.

    Raise ServingModeInvalid for a mode other than "sample" or "rerank".
    """
    if mode not in ServingMode.values:
        raise ServingModeInvalid(f"a serving mode is one of {', '.join(ServingMode.values)}, got {mode!r}")
    locked = PolicyVersion.objects.select_for_update().get(pk=version.pk)
    previous = locked.serving_mode
    if previous == mode:
        return False
    locked.serving_mode = mode
    locked.save(update_fields=["serving_mode"])
    version.serving_mode = mode
    AuditEntry.objects.create(actor=user, action="policyversion.serving_mode", target=locked.name,
                              details={"previous": previous, "mode": mode, "reason": reason})
    return True
