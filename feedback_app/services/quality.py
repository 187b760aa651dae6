"""Gold pairs, adjudication and the campaign settings."""

from __future__ import annotations

import re

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from feedback_app import events
from feedback_app.models import AuditEntry, Comparison, Profile, StudioSettings, Winner
from feedback_app.rendering import MAX_CHARS as GUIDELINES_MAX_CHARS

SETTINGS_FIELDS = {"gold_rate", "arena_share", "weight_by_trust", "min_trust", "label_target", "state", "qualification_pairs",
                   "qualification_accuracy", "criteria", "flags"}
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_NAMES = 8


class QualityError(Exception):
    """A request that cannot be carried out; the message says why."""


@transaction.atomic
def studio_settings_update(*, user, **changes) -> StudioSettings:
    """Change campaign settings (shares and thresholds within 0..1), with an audit entry."""
    unknown = set(changes) - SETTINGS_FIELDS
    if unknown:
        raise QualityError(f"unknown settings: {', '.join(sorted(unknown))}")
    for name in ("gold_rate", "arena_share", "min_trust", "qualification_accuracy"):
        if name in changes and not 0.0 <= float(changes[name]) <= 1.0:
            raise QualityError(f"{name} must be within 0 and 1, got {changes[name]}")
    if "state" in changes and changes["state"] not in StudioSettings.State.values:
        raise QualityError(f"state must be one of {', '.join(StudioSettings.State.values)}, got {changes['state']!r}")
    for name in ("criteria", "flags"):
        if name in changes:
            changes[name] = names_checked(changes[name], what=name)
    for name in ("label_target", "qualification_pairs"):
        if name in changes and not (isinstance(changes[name], int) and not isinstance(changes[name], bool) and changes[name] >= 0):
            raise QualityError(f"{name} must be a whole number, 0 or more, got {changes[name]!r}")
    config, _ = StudioSettings.objects.select_for_update().get_or_create(pk=1)
    before = {name: getattr(config, name) for name in changes}
    for name, value in changes.items():
        setattr(config, name, value)
    config.updated_by = user
    config.save()
    transaction.on_commit(lambda: cache.delete("feedback_app:studio-settings"))
    AuditEntry.objects.create(actor=user, action="settings.update", target="studio", details={"before": before, "after": changes})
    return config


def names_checked(names, *, what: str) -> list[str]:
    """Return ``names`` (criteria or flags) as a list, or raise QualityError naming what is wrong with them."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise QualityError(f"{what} must be a list of names")
    bad = [n for n in names if not NAME.fullmatch(n)]
    if bad:
        raise QualityError(f"{what}: {', '.join(map(repr, bad))} — a name is a lowercase letter, then letters, digits or _ (32 at most)")
    if len(set(names)) != len(names):
        raise QualityError(f"{what}: each name once")
    if len(names) > MAX_NAMES:
        raise QualityError(f"{what}: at most {MAX_NAMES} names, got {len(names)}")
    return list(names)


@transaction.atomic
def studio_guidelines_set(*, user, text: str) -> StudioSettings:
    """Replace the raters' guidelines (Markdown); a change raises their version, which every label then records.

    Raters see changed guidelines open on their next visit. The same text again changes nothing.
    """
    text = (text or "").replace("\r\n", "\n").strip()
    if len(text) > GUIDELINES_MAX_CHARS:
        raise QualityError(f"the guidelines are {len(text):,} characters long; at most {GUIDELINES_MAX_CHARS:,} are allowed")
    config, _ = StudioSettings.objects.select_for_update().get_or_create(pk=1)
    if text == config.guidelines:
        return config
    config.guidelines, config.guidelines_version, config.updated_by = text, config.guidelines_version + 1, user
    config.save()
    transaction.on_commit(lambda: cache.delete("feedback_app:studio-settings"))
    AuditEntry.objects.create(actor=user, action="guidelines.update", target="studio",
                              details={"version": config.guidelines_version, "chars": len(text)})
    return config


def guidelines_acknowledge(*, user, version: int) -> None:
    """Record that ``user`` read the guidelines up to ``version`` (they are then shown closed); never past the current one."""
    version = min(version, StudioSettings.objects.get_or_create(pk=1)[0].guidelines_version)
    Profile.objects.filter(user=user, guidelines_seen__lt=version).update(guidelines_seen=version)


@transaction.atomic
def comparison_mark_gold(*, comparison: Comparison, winner: str, user) -> Comparison:
    """Make a comparison a gold pair with the expected answer; it is then shown to every rater once."""
    if winner not in Winner.values:
        raise QualityError(f"the expected answer must be one of {', '.join(Winner.values)}")
    locked = Comparison.objects.select_for_update().get(pk=comparison.pk)
    locked.is_gold, locked.gold_winner = True, winner
    locked.status, locked.completed_at = Comparison.Status.OPEN, None
    locked.save(update_fields=["is_gold", "gold_winner", "status", "completed_at"])
    AuditEntry.objects.create(actor=user, action="comparison.gold", target=f"comparison:{locked.pk}", details={"winner": winner})
    events.comparisons_supplied(count=1)
    return locked


@transaction.atomic
def comparison_unmark_gold(*, comparison: Comparison, user) -> Comparison:
    """Return a gold pair to the ordinary pool (closed if it has the labels it needs)."""
    locked = Comparison.objects.select_for_update().get(pk=comparison.pk)
    locked.is_gold, locked.gold_winner = False, ""
    # A gold pair may hold more labels than it asked for; they all stay.
    locked.required_labels = max(locked.required_labels, locked.label_count)
    if locked.label_count >= locked.required_labels:
        locked.status, locked.completed_at = Comparison.Status.COMPLETE, timezone.now()
    locked.save(update_fields=["is_gold", "gold_winner", "required_labels", "status", "completed_at"])
    AuditEntry.objects.create(actor=user, action="comparison.ungold", target=f"comparison:{locked.pk}")
    return locked


def comparisons_promote_unanimous_to_gold(*, user, min_labels: int = 2, limit: int = 100) -> int:
    """Make gold pairs of complete comparisons where all of 2+ raters chose the same response."""
    candidates = (
        Comparison.objects.filter(is_gold=False, status=Comparison.Status.COMPLETE, label_count__gte=min_labels, excluded=False)
        .annotate(winners=Count("labels__winner", distinct=True))
        .filter(winners=1)
        .exclude(labels__winner__in=[Winner.TIE, Winner.BOTH_BAD])
        .order_by("-id")[:limit]
    )
    promoted = 0
    for comparison in candidates:
        winner = comparison.labels.values_list("winner", flat=True).first()
        comparison_mark_gold(comparison=comparison, winner=winner, user=user)
        promoted += 1
    return promoted


@transaction.atomic
def comparison_adjudicate(*, comparison: Comparison, winner: str, exclude: bool, note: str, user) -> Comparison:
    """Record an admin's verdict on a flagged or disputed comparison.

    ``winner`` (A, B, tie or both bad) replaces the raters' votes in training; ``exclude``
    leaves the comparison out of training altogether. Either way it leaves the review queue.
    """
    if winner and winner not in Winner.values:
        raise QualityError(f"the verdict must be one of {', '.join(Winner.values)} (or none)")
    if not winner and not exclude and not note:
        raise QualityError("give a verdict, exclude the comparison, or write a note")
    locked = Comparison.objects.select_for_update().get(pk=comparison.pk)
    locked.adjudicated_winner, locked.excluded, locked.review_note = winner, exclude, note
    locked.reviewed_by, locked.reviewed_at = user, timezone.now()
    locked.save(update_fields=["adjudicated_winner", "excluded", "review_note", "reviewed_by", "reviewed_at"])
    AuditEntry.objects.create(actor=user, action="comparison.adjudicate", target=f"comparison:{locked.pk}",
                              details={"winner": winner, "exclude": exclude, "note": note})
    return locked
