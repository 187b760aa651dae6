"""Making campaigns and deciding who works in them."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from feedback_app import events
from feedback_app.models import AuditEntry, Campaign, CampaignMember, Role
from feedback_app.rendering import MAX_CHARS as GUIDELINES_MAX_CHARS
from feedback_app.selectors.campaigns import campaign_cache_forget, campaign_default
from feedback_app.services.versions import campaign_models_inherit

# The rules a new campaign copies from the one it starts from.
_RULES = ("labels_per_comparison", "lease_seconds", "gold_rate", "arena_share", "weight_by_trust", "min_trust", "criteria", "flags",
          "qualification_pairs", "qualification_accuracy", "selection_strategy", "refit_every_n_labels", "policy_every_n_labels", "ai_feedback", "ai_audit_share")


SETTINGS_FIELDS = {"labels_per_comparison", "lease_seconds", "gold_rate", "arena_share", "weight_by_trust", "min_trust", "label_target", "state", "qualification_pairs",
                   "qualification_accuracy", "criteria", "flags", "selection_strategy", "refit_every_n_labels", "policy_every_n_labels",
                   "ai_feedback", "ai_audit_share"}
STRATEGIES = ("uncertain", "thompson", "best_vs_worst", "random")
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_NAMES = 8


class CampaignError(ValueError):
    """A campaign or membership change that cannot be made; the message says why."""


@transaction.atomic
def campaign_create(*, slug: str, name: str, parent: Campaign | None = None, actor=None) -> Campaign:
    """Create a campaign named ``slug`` in URLs; with ``parent``, it copies the parent's rules, starts its model lines
    from the parent's active reward model and policy (``services.versions.campaign_models_inherit``), and records it.
    Without, its lines start from the base policy and no reward model."""
    campaign_default()  # the default campaign always holds the first key
    if not slug or slugify(slug) != slug:
        raise CampaignError(f"slug {slug!r} must be lower-case letters, digits, '-' or '_'")
    if not name.strip():
        raise CampaignError("a campaign needs a name")
    if Campaign.objects.filter(slug=slug).exists():
        raise CampaignError(f"a campaign with slug {slug!r} exists already")
    rules = {field: getattr(parent, field) for field in _RULES} if parent else {}
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(slug=slug, name=name.strip(), parent=parent, updated_by=actor, **rules)
    except IntegrityError as exc:  # made at the same moment by someone else
        raise CampaignError(f"a campaign with slug {slug!r} exists already") from exc
    inherited = campaign_models_inherit(campaign=campaign, source=parent, user=actor) if parent else []
    AuditEntry.objects.create(actor=actor, action="campaign.create", target=f"campaign:{slug}",
                              details={"name": campaign.name, "parent": parent.slug if parent else None, "models": inherited})
    return campaign


@transaction.atomic
def member_set(*, campaign: Campaign, user, role: Role, actor=None) -> CampaignMember:
    """Make ``user`` a member of ``campaign`` in ``role`` (or change their role there)."""
    if role not in Role.values:
        raise CampaignError(f"role must be one of {', '.join(Role.values)}")
    member, created = CampaignMember.objects.get_or_create(campaign=campaign, user=user, defaults={"role": role})
    if not created and member.role != role:
        member.role = role
        member.save(update_fields=["role"])
    AuditEntry.objects.create(actor=actor, action="campaign.member", target=f"campaign:{campaign.slug}",
                              details={"user": user.get_username(), "role": role})
    events.user_access_changed(user_id=user.pk)
    return member


@transaction.atomic
def member_remove(*, campaign: Campaign, user, actor=None) -> bool:
    """Take ``user`` out of ``campaign``; return whether they were a member. Their labels stay."""
    removed, _ = CampaignMember.objects.filter(campaign=campaign, user=user).delete()
    if removed:
        AuditEntry.objects.create(actor=actor, action="campaign.member_remove", target=f"campaign:{campaign.slug}",
                                  details={"user": user.get_username()})
        events.user_access_changed(user_id=user.pk)
    return bool(removed)


def member_state(*, campaign: Campaign, user) -> CampaignMember:
    """Return the membership that holds the user's state in the campaign (guidelines read, qualification).

    A user working in the default campaign without a membership (see selectors.campaigns) is given
    one here, with their studio role, the first time their state there is written.
    """
    from feedback_app.selectors.accounts import user_role

    member = CampaignMember.objects.filter(campaign=campaign, user=user).first()
    if member is not None:
        return member
    member, _ = CampaignMember.objects.get_or_create(campaign=campaign, user=user, defaults={"role": user_role(user=user) or Role.RATER})
    return member


@transaction.atomic
def campaign_settings_update(*, campaign: Campaign, user, **changes) -> Campaign:
    """Change the campaign's rules (shares and thresholds within 0..1), with an audit entry."""
    changes = settings_checked(changes)
    config = Campaign.objects.select_for_update().get(pk=campaign.pk)
    before = {name: getattr(config, name) for name in changes}
    for name, value in changes.items():
        setattr(config, name, value)
    config.updated_by = user
    config.save()
    transaction.on_commit(lambda: campaign_cache_forget(campaign_id=config.pk))
    AuditEntry.objects.create(actor=user, action="settings.update", target=f"campaign:{config.slug}", details={"before": before, "after": changes})
    return config


def settings_checked(changes: dict) -> dict:
    """Return campaign rule changes as they will be stored, or raise CampaignError naming the first one at fault."""
    changes = dict(changes)
    unknown = set(changes) - SETTINGS_FIELDS
    if unknown:
        raise CampaignError(f"unknown settings: {', '.join(sorted(unknown))}")
    for name in ("gold_rate", "arena_share", "min_trust", "qualification_accuracy"):
        if name in changes and not 0.0 <= float(changes[name]) <= 1.0:
            raise CampaignError(f"{name} must be within 0 and 1, got {changes[name]}")
    if "state" in changes and changes["state"] not in Campaign.State.values:
        raise CampaignError(f"state must be one of {', '.join(Campaign.State.values)}, got {changes['state']!r}")
    if changes.get("ai_audit_share") is not None and not 0.0 <= float(changes["ai_audit_share"]) <= 1.0:
        raise CampaignError(f"ai_audit_share must be empty (the studio's setting) or within 0 and 1, got {changes['ai_audit_share']}")
    if changes.get("selection_strategy") not in (None, "", *STRATEGIES):
        raise CampaignError(f"selection_strategy must be empty (the studio's setting) or one of {', '.join(STRATEGIES)}, got {changes['selection_strategy']!r}")
    for name in ("refit_every_n_labels", "policy_every_n_labels"):
        value = changes.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise CampaignError(f"{name} must be empty (the studio's setting) or a whole number, 0 or more, got {value!r}")
    for name in ("criteria", "flags"):
        if name in changes:
            changes[name] = names_checked(changes[name], what=name)
    for name in ("label_target", "qualification_pairs"):
        if name in changes and not (isinstance(changes[name], int) and not isinstance(changes[name], bool) and changes[name] >= 0):
            raise CampaignError(f"{name} must be a whole number, 0 or more, got {changes[name]!r}")
    for name, low in (("labels_per_comparison", 1), ("lease_seconds", 30)):
        value = changes.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise CampaignError(f"{name} must be empty (the studio's setting) or a whole number, {low} or more, got {value!r}")
    return changes


def names_checked(names, *, what: str) -> list[str]:
    """Return ``names`` (criteria or flags) as a list, or raise CampaignError naming what is wrong with them."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CampaignError(f"{what} must be a list of names")
    bad = [n for n in names if not NAME.fullmatch(n)]
    if bad:
        raise CampaignError(f"{what}: {', '.join(map(repr, bad))} — a name is a lowercase letter, then letters, digits or _ (32 at most)")
    if len(set(names)) != len(names):
        raise CampaignError(f"{what}: each name once")
    if len(names) > MAX_NAMES:
        raise CampaignError(f"{what}: at most {MAX_NAMES} names, got {len(names)}")
    return list(names)


@transaction.atomic
def campaign_guidelines_set(*, campaign: Campaign, user, text: str) -> Campaign:
    """Replace the campaign's guidelines for raters (Markdown); a change raises their version, which every label then records.

    Raters see changed guidelines open on their next visit. The same text again changes nothing.
    """
    text = (text or "").replace("\r\n", "\n").strip()
    if len(text) > GUIDELINES_MAX_CHARS:
        raise CampaignError(f"the guidelines are {len(text):,} characters long; at most {GUIDELINES_MAX_CHARS:,} are allowed")
    config = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if text == config.guidelines:
        return config
    config.guidelines, config.guidelines_version, config.updated_by = text, config.guidelines_version + 1, user
    config.save()
    transaction.on_commit(lambda: campaign_cache_forget(campaign_id=config.pk))
    AuditEntry.objects.create(actor=user, action="guidelines.update", target=f"campaign:{config.slug}",
                              details={"version": config.guidelines_version, "chars": len(text)})
    return config


def guidelines_acknowledge(*, campaign: Campaign, user, version: int) -> None:
    """Record that ``user`` read the campaign's guidelines up to ``version`` (they are then shown closed); never past the current one."""
    version = min(version, Campaign.objects.get(pk=campaign.pk).guidelines_version)
    member = member_state(campaign=campaign, user=user)
    CampaignMember.objects.filter(pk=member.pk, guidelines_seen__lt=version).update(guidelines_seen=version)
