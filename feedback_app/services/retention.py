"""Model-store retention: which checkpoint folders stay, and removing the rest.

A version's folder stays while it is active or a candidate, is among the newest
MODEL_RETENTION_KEEP of its line, or is named by a label's provenance: the policy that wrote
either reply of a labelled comparison, or the policy and reward model that chose the pair.
Exports carry those same two names on every labelled row and record no versions of their
own, so these are also the versions an export names. A kept policy keeps its DPO ancestors
(an adapter is useless without its parent), and the base policy of each campaign always stays.

A line is a campaign's kind of version and, for reward models, a tier (the full tier warm-starts
from its newest version). A campaign started from another's models shares their folders: a folder
stays while any version that uses it stays.

Only retired versions are pruned. The row stays (metrics, history) with status "pruned"; the
status changes before the folder goes, by a conditional update, so a rollback that locked the
row first wins and a pruned version can no longer be made active.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from feedback_app import training_bridge
from feedback_app.models import AuditEntry, Campaign, Comparison, PolicyVersion, PreferenceLabel, RewardModelVersion, VersionStatus
from feedback_app.selectors.training import reward_models_active
from feedback_app.services.versions import BASE_POLICY, base_policy_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (or, dry, would remove)."""

    dry_run: bool
    reward_models: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    embedding_shards: int = 0

    def lines(self) -> list[str]:
        """Return the report as lines for a person to read."""
        verb = "would remove" if self.dry_run else "removed"
        return [
            f"reward models: {verb} {len(self.reward_models)}" + (f": {', '.join(self.reward_models)}" if self.reward_models else ""),
            f"policies: {verb} {len(self.policies)}" + (f": {', '.join(self.policies)}" if self.policies else ""),
            f"embedding cache: {verb} {self.embedding_shards} shard(s)",
        ]


def versions_retained(*, keep_last: int) -> tuple[set[int], set[int]]:
    """Return the ids of the (reward versions, policy versions) whose folders must stay."""
    labelled = Comparison.objects.filter(pk__in=PreferenceLabel.objects.values("comparison_id"))
    reward = _ids(RewardModelVersion.objects.filter(status__in=[VersionStatus.ACTIVE, VersionStatus.CANDIDATE]))
    for campaign_id, tier in RewardModelVersion.objects.order_by().values_list("campaign_id", "tier").distinct():
        reward |= _ids(RewardModelVersion.objects.filter(campaign_id=campaign_id, tier=tier).order_by("-id")[:keep_last])
    reward |= set(labelled.exclude(reward_model_version=None).order_by().values_list("reward_model_version_id", flat=True).distinct())

    # each campaign's base policy (the root of its line; all share the base generator's folder) always stays
    bases = [base_policy_name(campaign_id=pk) for pk in Campaign.objects.values_list("pk", flat=True)]
    policy = _ids(PolicyVersion.objects.filter(Q(status__in=[VersionStatus.ACTIVE, VersionStatus.CANDIDATE]) | Q(name__in=[BASE_POLICY, *bases])))
    for campaign_id in PolicyVersion.objects.order_by().values_list("campaign_id", flat=True).distinct():
        policy |= _ids(PolicyVersion.objects.filter(campaign_id=campaign_id).order_by("-id")[:keep_last])
    for column in ("policy_version_id", "response_a__policy_version_id", "response_b__policy_version_id"):
        policy |= set(labelled.exclude(**{column: None}).order_by().values_list(column, flat=True).distinct())
    parents = dict(PolicyVersion.objects.values_list("pk", "parent_id"))
    for pk in list(policy):
        while parents.get(pk) is not None and parents[pk] not in policy:
            pk = parents[pk]
            policy.add(pk)
    return reward, policy


def model_store_prune(*, dry_run: bool = False, user=None) -> PruneReport:
    """Remove the folders of the retired versions retention does not keep, then bound the embedding cache."""
    reward_kept, policy_kept = versions_retained(keep_last=settings.MODEL_RETENTION_KEEP)
    pruned = {}
    for model, kept in ((RewardModelVersion, reward_kept), (PolicyVersion, policy_kept)):
        doomed = model.objects.filter(status=VersionStatus.RETIRED).exclude(pk__in=kept).order_by("id")
        # a folder another campaign's version uses (it started from this one) stays with that version
        doomed = doomed.exclude(path__in=model.objects.filter(pk__in=kept).values("path"))
        pruned[model] = [v.name for v in doomed] if dry_run else [v.name for v in doomed if _version_prune(v)]
        if not dry_run:
            _sweep_pruned(model)
    staying = RewardModelVersion.objects.exclude(status=VersionStatus.PRUNED).exclude(name__in=pruned[RewardModelVersion])
    shards = training_bridge.embeddings_prune(
        manifests=staying.filter(tier="fast").values_list("manifest", flat=True),
        max_bytes=settings.EMBEDDING_CACHE_MAX_MB * 2**20, dry_run=dry_run,
    )
    report = PruneReport(dry_run=dry_run, reward_models=pruned[RewardModelVersion], policies=pruned[PolicyVersion],
                         embedding_shards=len(shards))
    if not dry_run and (report.reward_models or report.policies):
        AuditEntry.objects.create(actor=user, action="model_store.prune", target=str(settings.MODEL_STORE),
                                  details={"reward_models": report.reward_models, "policies": report.policies,
                                           "embedding_shards": report.embedding_shards})
    return report


def _version_prune(version: RewardModelVersion | PolicyVersion) -> bool:
    """Mark one retired version pruned and delete its folder (unless another version, not pruned, uses it too);
    return False when it changed status meanwhile."""
    model = type(version)
    if not model.objects.filter(pk=version.pk, status=VersionStatus.RETIRED).update(status=VersionStatus.PRUNED, pruned_at=timezone.now()):
        return False  # made active again meanwhile: it stays
    if not model.objects.filter(path=version.path).exclude(status=VersionStatus.PRUNED).exists():
        _folder_remove(version)
    return True


def _sweep_pruned(model) -> None:
    """Delete the folders of pruned versions that a removal cut short left behind (not those another version still uses)."""
    in_use = set(model.objects.exclude(status=VersionStatus.PRUNED).values_list("path", flat=True))
    for version in model.objects.filter(status=VersionStatus.PRUNED).only("name", "path"):
        if version.path not in in_use and training_bridge.version_folder(version.path).exists():
            _folder_remove(version)


def _folder_remove(version) -> None:
    try:
        training_bridge.checkpoint_remove(version.path)
    except (OSError, ValueError) as exc:  # the row says pruned; the next prune tries the folder again
        logger.warning("could not remove the folder %s of %s: %s", version.path, version.name, exc)


def _ids(queryset) -> set[int]:
    return set(queryset.values_list("pk", flat=True))



def embeddings_compact() -> int:
    """Merge the embedding-cache shards of the active reward models' backbones once there are enough; return how many were merged."""
    # one cache per backbone and length, which campaigns' models often share
    manifests = {(v.manifest.get("backbone_identity"), json.dumps(v.manifest.get("hyperparameters"))): v.manifest for v in reward_models_active()}
    return sum(training_bridge.embeddings_compact(manifest=manifest) for manifest in manifests.values())
