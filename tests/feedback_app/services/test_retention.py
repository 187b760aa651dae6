import os
import time

import pytest

from feedback_app import training_bridge
from feedback_app.models import AuditEntry, PolicyVersion, PreferenceLabel, RewardModelVersion, VersionStatus
from feedback_app.services.retention import model_store_prune, versions_retained
from feedback_app.services.versions import VersionPruned, version_activate

pytestmark = pytest.mark.django_db

RETIRED, ACTIVE, CANDIDATE = VersionStatus.RETIRED, VersionStatus.ACTIVE, VersionStatus.CANDIDATE


def reward(name: str, status: str = RETIRED, *, tier: str = "fast", manifest: dict | None = None) -> RewardModelVersion:
    _folder("reward", name)
    return RewardModelVersion.objects.create(name=name, path=f"reward/{name}", status=status, tier=tier, manifest=manifest or {})


def policy(name: str, status: str = RETIRED, *, parent: PolicyVersion | None = None) -> PolicyVersion:
    _folder("policy", name)
    return PolicyVersion.objects.create(name=name, path=f"policy/{name}", status=status, parent=parent)


def _folder(kind: str, name: str) -> None:
    training_bridge.checkpoint_store().write(kind, name, {}, lambda tmp: (tmp / "weights.bin").write_bytes(b"w"))


def names(model, ids) -> set[str]:
    return set(model.objects.filter(pk__in=ids).values_list("name", flat=True))


def label(comparison, rater) -> None:
    PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner="a", strength=2)


def test_keeps_active_candidates_and_the_newest_k_of_each_line(settings):
    """Active and candidates stay, and the newest K of each tier; older retired versions go."""
    base = policy("policy-base", ACTIVE)
    r1, r2, r3, r4, r5 = reward("rm-1"), reward("rm-2", ACTIVE), reward("rm-3"), reward("rm-4"), reward("rm-5")
    f1, f2 = reward("rm-f1", tier="full"), reward("rm-f2", tier="full")  # older than the fast line's newest
    r6 = reward("rm-6", CANDIDATE)
    kept_reward, _ = versions_retained(keep_last=2)
    assert names(RewardModelVersion, kept_reward) == {"rm-2", "rm-5", "rm-6", "rm-f1", "rm-f2"}
    assert {r1.pk, r3.pk, r4.pk}.isdisjoint(kept_reward) and {f1.pk, f2.pk, r6.pk} <= kept_reward
    assert base.pk in versions_retained(keep_last=2)[1]


def test_keeps_versions_named_by_a_labels_provenance(make_comparisons, rater):
    """The policies and reward model behind a labelled comparison stay; an unlabelled one protects nothing."""
    policy("policy-base", ACTIVE)
    chose, unlabelled_rm = reward("rm-chose"), reward("rm-unlabelled")
    wrote_a, wrote_b, generated, unlabelled_policy = (policy(n) for n in ("p-a", "p-b", "p-gen", "p-unlabelled"))
    reward("rm-new", ACTIVE), policy("p-newest")  # the newest of each line, for keep_last=1
    labelled, open_ = make_comparisons(2)
    labelled.reward_model_version, labelled.policy_version = chose, generated
    labelled.save()
    labelled.response_a.policy_version, labelled.response_b.policy_version = wrote_a, wrote_b
    labelled.response_a.save(), labelled.response_b.save()
    open_.reward_model_version, open_.policy_version = unlabelled_rm, unlabelled_policy
    open_.save()
    label(labelled, rater)

    kept_reward, kept_policy = versions_retained(keep_last=1)
    assert names(RewardModelVersion, kept_reward) == {"rm-chose", "rm-new"}
    assert names(PolicyVersion, kept_policy) == {"policy-base", "p-a", "p-b", "p-gen", "p-newest"}


def test_a_kept_policy_keeps_its_dpo_ancestors_and_the_base(settings):
    """An adapter needs its parent: the whole chain of a kept policy stays; a retired side branch goes."""
    base = policy("policy-base", RETIRED)
    p1 = policy("p1", parent=base)
    p2 = policy("p2", parent=p1)
    side = policy("p-side", parent=base)
    policy("p3", ACTIVE, parent=p2)
    _, kept_policy = versions_retained(keep_last=1)
    assert names(PolicyVersion, kept_policy) == {"policy-base", "p1", "p2", "p3"}
    assert side.pk not in kept_policy


def test_prune_removes_folders_and_keeps_rows(settings, admin_user):
    """A pruned version keeps its row and metrics, with status pruned; its folder is gone, the others stay."""
    settings.MODEL_RETENTION_KEEP = 1
    policy("policy-base", ACTIVE)
    old = RewardModelVersion.objects.create(name="rm-old", path="reward/rm-old", status=RETIRED, metrics={"val_accuracy": 0.7})
    _folder("reward", "rm-old")
    reward("rm-active", ACTIVE)
    report = model_store_prune(user=admin_user)
    assert report.reward_models == ["rm-old"] and report.policies == []
    old.refresh_from_db()
    assert old.status == VersionStatus.PRUNED and old.pruned_at is not None and old.metrics == {"val_accuracy": 0.7}
    assert not training_bridge.version_folder("reward/rm-old").exists()
    assert training_bridge.version_folder("reward/rm-active").is_dir()
    assert training_bridge.version_folder("policy/policy-base").is_dir()
    assert AuditEntry.objects.filter(action="model_store.prune", actor=admin_user, details__reward_models=["rm-old"]).exists()
    assert model_store_prune().reward_models == []  # nothing more to do


def test_dry_run_removes_nothing(settings):
    """A dry run names what a prune would remove and leaves rows and folders alone."""
    settings.MODEL_RETENTION_KEEP = 1
    reward("rm-old"), reward("rm-active", ACTIVE)
    report = model_store_prune(dry_run=True)
    assert report.reward_models == ["rm-old"] and report.dry_run
    assert "would remove 1: rm-old" in report.lines()[0]
    assert RewardModelVersion.objects.get(name="rm-old").status == RETIRED
    assert training_bridge.version_folder("reward/rm-old").is_dir()


def test_a_pruned_version_cannot_be_made_active(settings):
    """Activating a pruned version is refused, naming it; the active one stays active."""
    settings.MODEL_RETENTION_KEEP = 1
    old, active = reward("rm-old"), reward("rm-active", ACTIVE)
    model_store_prune()
    with pytest.raises(VersionPruned, match="rm-old was pruned"):
        version_activate(version=RewardModelVersion.objects.get(pk=old.pk), user=None, action="rollback")
    active.refresh_from_db()
    assert active.status == ACTIVE


def test_a_prune_finishes_the_folder_of_a_version_pruned_before(settings):
    """A version marked pruned whose folder survived (a removal cut short) loses it on the next prune."""
    reward("rm-half", VersionStatus.PRUNED)
    model_store_prune()
    assert not training_bridge.version_folder("reward/rm-half").exists()


def test_the_embedding_cache_keeps_the_backbones_of_kept_versions(settings):
    """Shards of a backbone no kept fast-tier version uses are dropped; a kept one's stay under the bound."""
    from rm_trainer.embeddings import cache_namespace

    settings.MODEL_RETENTION_KEEP = 1
    manifest = {"backbone_identity": "kept-backbone", "hyperparameters": {"max_length": 32}}
    reward("rm-active", ACTIVE, manifest=manifest)
    cache = settings.MODEL_STORE / "embeddings"
    kept = cache / cache_namespace("kept-backbone", 32) / "a.npz"
    dropped = cache / cache_namespace("old-backbone", 32) / "b.npz"
    for shard in (kept, dropped):
        shard.parent.mkdir(parents=True)
        shard.write_bytes(b"x" * 100)
        os.utime(shard, (time.time() - 7200, time.time() - 7200))
    assert model_store_prune().embedding_shards == 1
    assert kept.exists() and not dropped.exists()


def test_a_version_rolled_back_while_the_prune_runs_keeps_its_folder(settings):
    """The status changes only from retired: a version made active after the plan was made is left whole."""
    from feedback_app.services.retention import _version_prune

    stale = reward("rm-old")
    reward("rm-active", ACTIVE)
    version_activate(version=RewardModelVersion.objects.get(name="rm-old"), user=None, action="rollback")
    assert _version_prune(stale) is False  # the plan still saw it retired
    assert RewardModelVersion.objects.get(name="rm-old").status == ACTIVE
    assert training_bridge.version_folder("reward/rm-old").is_dir()
