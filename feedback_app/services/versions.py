"""Which version is live: activation (promote or roll back, chosen here once) and the base policy."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app import events, training_bridge
from feedback_app.models import DEFAULT_CAMPAIGN_ID, AuditEntry, Campaign, PolicyVersion, RewardModelVersion, VersionStatus
from feedback_app.selectors.campaigns import campaign_get
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
def version_activate(*, version: RewardModelVersion | PolicyVersion, user, action: str, reason: str = "", follow_up: bool = True) -> None:
    """Make ``version`` the one active version of its kind in its campaign's line, in one transaction, with an audit entry.

    ``action`` is "promote" (a candidate goes live) or "rollback" (an earlier version returns).
    Raise VersionPruned for a version whose folder retention removed. A promoted reward model asks for
    a policy update of its line (``policy_ask_after_reward_promotion``) unless ``follow_up`` is False.
    """
    model = type(version)
    locked = model.objects.select_for_update().get(pk=version.pk)
    if locked.status == VersionStatus.PRUNED:
        raise VersionPruned(f"{locked.name} was pruned from the model store (its checkpoint folder is gone) and cannot be made active")
    previous = model.objects.active().filter(campaign_id=locked.campaign_id).select_for_update().exclude(pk=version.pk).first()
    if previous is not None:
        previous.status = VersionStatus.RETIRED
        previous.save(update_fields=["status"])
    locked.status = VersionStatus.ACTIVE
    locked.activated_at = timezone.now()
    locked.save(update_fields=["status", "activated_at"])
    AuditEntry.objects.create(
        actor=user, action=f"{model._meta.model_name}.{action}", target=locked.name,
        details={"previous": previous.name if previous else None, "reason": reason, "campaign": campaign_get(campaign_id=locked.campaign_id).slug},
    )
    events.version_activated(version=locked, previous=previous)
    if model is RewardModelVersion and action == "promote" and follow_up:
        policy_ask_after_reward_promotion(campaign_id=locked.campaign_id)


def base_policy_name(*, campaign_id: int) -> str:
    """Return the name of a campaign's base policy version: "policy-base" in the default campaign, "policy-base-<id>" elsewhere."""
    return BASE_POLICY if campaign_id == DEFAULT_CAMPAIGN_ID else f"{BASE_POLICY}-{campaign_id}"


def policy_active_or_base(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> PolicyVersion:
    """Return the campaign's active policy; on first use, its base version, activated.

    The base generator is written once, as the default campaign's "policy-base"; another campaign's
    base is a version of its own line that shares that folder. The base is served in
    POLICY_SERVING_MODE like a trained version: with rerank, every promoted reward model improves
    what raters see before any DPO version passes its gate.
    """
    active = policy_active(campaign_id=campaign_id)
    if active is not None:
        return active
    base = policy_base()
    if campaign_id != DEFAULT_CAMPAIGN_ID:
        base, _ = PolicyVersion.objects.get_or_create(
            name=base_policy_name(campaign_id=campaign_id),
            defaults={"campaign_id": campaign_id, "path": base.path, "manifest": base.manifest, "generator": base.generator,
                      "sampling": base.sampling, "selection_strategy": campaign_get(campaign_id=campaign_id).strategy,
                      "serving_mode": settings.POLICY_SERVING_MODE},
        )
    with transaction.atomic():
        if policy_active(campaign_id=campaign_id) is None:
            version_activate(version=base, user=None, action="promote", reason="the base generator, on first use")
    return policy_active(campaign_id=campaign_id)


def policy_base() -> PolicyVersion:
    """Return the base policy "policy-base" (the default campaign's first version), writing the base generator on first use.

    Every KL to the base is measured to it, whichever campaign's version is measured.
    """
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
                "selection_strategy": campaign_get(campaign_id=DEFAULT_CAMPAIGN_ID).strategy, "serving_mode": settings.POLICY_SERVING_MODE,
            },
        )
    return base


INHERITED_FIELDS = {
    RewardModelVersion: ("path", "metrics", "manifest", "tier", "backbone", "data_range"),
    PolicyVersion: ("path", "metrics", "manifest", "generator", "reward_model_id", "sampling", "serving_mode"),
}


def campaign_models_inherit(*, campaign: Campaign, source: Campaign, user=None) -> list[str]:
    """Start ``campaign``'s lines from ``source``'s active reward model and policy; return the names of the new versions.

    Each becomes a version of ``campaign``'s line whose parent is the version it started from (in
    ``source``'s line), sharing its folder, and is made active there. A line that is already
    running in ``campaign``, or has no active version in ``source``, is left as it is. Call in the
    transaction that makes the campaign.
    """
    made = []
    for model, fields in INHERITED_FIELDS.items():
        origin = model.objects.active().filter(campaign_id=source.pk).first()
        if origin is None or model.objects.filter(campaign_id=campaign.pk).exists():
            continue
        values = {name: getattr(origin, name) for name in fields}
        if model is PolicyVersion:
            values["selection_strategy"] = campaign.strategy
        copy = model.objects.create(name=f"{origin.name}-c{campaign.pk}"[:64], campaign=campaign, parent=origin, **values)
        version_activate(version=copy, user=user, action="promote", follow_up=False,
                         reason=f"campaign {campaign.slug} starts from {origin.name}, the active version of campaign {source.slug}")
        made.append(copy.name)
    return made
