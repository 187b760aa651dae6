"""Which version is live: activation (promote or roll back, chosen here once) and the base policy."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app import events, training_bridge
from feedback_app.models import AuditEntry, PolicyVersion, RewardModelVersion, VersionStatus
from feedback_app.selectors.training import policy_active
from feedback_app.services.policy_cadence import policy_ask_after_reward_promotion

BASE_POLICY = "policy-base"


class VersionPruned(Exception):
    """The version's checkpoint folder was removed by retention; it cannot become active again."""


def version_activation_action(*, version: RewardModelVersion | PolicyVersion) -> str:
    """Return what making ``version`` active is: "rollback" for a retired version (an earlier one returns), else "promote"."""
    return "rollback" if version.status == VersionStatus.RETIRED else "promote"


def version_make_active(*, version: RewardModelVersion | PolicyVersion, user, reason: str) -> str:
    """Promote or roll back to ``version`` (the choice is ``version_activation_action``); return the action taken.

    Raise VersionPruned for a version whose folder retention removed.
    """
    action = version_activation_action(version=version)
    version_activate(version=version, user=user, action=action, reason=reason)
    return action


@transaction.atomic
def version_activate(*, version: RewardModelVersion | PolicyVersion, user, action: str, reason: str = "") -> None:
    """Make ``version`` the one active version of its kind, in one transaction, with an audit entry.

    ``action`` is "promote" (a candidate goes live) or "rollback" (an earlier version returns).
    Raise VersionPruned for a version whose folder retention removed.
    """
    model = type(version)
    locked = model.objects.select_for_update().get(pk=version.pk)
    if locked.status == VersionStatus.PRUNED:
        raise VersionPruned(f"{locked.name} was pruned from the model store (its checkpoint folder is gone) and cannot be made active")
    previous = model.objects.active().select_for_update().exclude(pk=version.pk).first()
    if previous is not None:
        previous.status = VersionStatus.RETIRED
        previous.save(update_fields=["status"])
    locked.status = VersionStatus.ACTIVE
    locked.activated_at = timezone.now()
    locked.save(update_fields=["status", "activated_at"])
    AuditEntry.objects.create(
        actor=user, action=f"{model._meta.model_name}.{action}", target=locked.name,
        details={"previous": previous.name if previous else None, "reason": reason},
    )
    events.version_activated(version=locked, previous=previous)
    if model is RewardModelVersion and action == "promote":
        policy_ask_after_reward_promotion()


def policy_active_or_base() -> PolicyVersion:
    """Return the active policy; on first use, write the base generator as version "policy-base" and activate it.

    The base is served in POLICY_SERVING_MODE like a trained version: with rerank, every promoted
    reward model improves what raters see before any DPO version passes its gate.
    """
    active = policy_active()
    if active is not None:
        return active
    base = PolicyVersion.objects.filter(name=BASE_POLICY).first()
    if base is None:
        path, manifest = training_bridge.policy_materialise_base(name=BASE_POLICY)
        folder, gguf_file = training_bridge.generator_source()
        base, _ = PolicyVersion.objects.get_or_create(
            name=BASE_POLICY,
            defaults={
                "path": path, "manifest": manifest, "generator": f"{folder}/{gguf_file}" if gguf_file else folder,
                "sampling": {"temperature": settings.GENERATION_TEMPERATURE, "max_new_tokens": settings.GENERATION_MAX_NEW_TOKENS,
                             "candidates": settings.SUPPLY_CANDIDATES},
                "selection_strategy": settings.SELECTION_STRATEGY, "serving_mode": settings.POLICY_SERVING_MODE,
            },
        )
    with transaction.atomic():
        if policy_active() is None:
            version_activate(version=base, user=None, action="promote", reason="the base generator, on first use")
    return policy_active()
