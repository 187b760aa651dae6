"""Which version is live: activation, the promote-or-rollback choice, and the base policy."""

import pytest

from feedback_app import training_bridge
from feedback_app.models import AuditEntry, PolicyVersion, RewardModelVersion
from feedback_app.services.versions import (
    BASE_POLICY,
    VersionPruned,
    policy_active_or_base,
    version_activate,
    version_activation_action,
    version_make_active,
)

pytestmark = pytest.mark.django_db


def test_rollback_to_an_earlier_version(admin_user):
    v1 = RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1")
    v2 = RewardModelVersion.objects.create(name="rm-2", path="reward/rm-2", parent=v1)
    version_activate(version=v1, user=None, action="promote")
    version_activate(version=v2, user=None, action="promote")
    version_activate(version=v1, user=admin_user, action="rollback", reason="v2 misbehaves")
    v1.refresh_from_db(), v2.refresh_from_db()
    assert (v1.status, v2.status) == ("active", "retired")
    entry = AuditEntry.objects.filter(action="rewardmodelversion.rollback").get()
    assert entry.actor == admin_user and entry.details == {"previous": "rm-2", "reason": "v2 misbehaves", "campaign": "default"}


@pytest.mark.parametrize("model", [RewardModelVersion, PolicyVersion])
def test_activation_is_a_rollback_for_a_retired_version_and_a_promotion_otherwise(model):
    assert version_activation_action(version=model(name="v", path="v", status="retired")) == "rollback"
    assert version_activation_action(version=model(name="v", path="v", status="candidate")) == "promote"
    assert version_activation_action(version=model(name="v", path="v", status="active")) == "promote"


def test_make_active_promotes_a_candidate_and_rolls_back_to_a_retired_version(admin_user):
    """Each call takes the action the choice names, writes one audit entry under it and returns it."""
    old = PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="retired")
    PolicyVersion.objects.create(name="policy-2", path="policy/policy-2", status="active")
    candidate = PolicyVersion.objects.create(name="policy-3", path="policy/policy-3", status="candidate")
    assert version_make_active(version=old, user=admin_user, reason="policy-2 rambles") == "rollback"
    versions = AuditEntry.objects.filter(action__startswith="policyversion.")
    assert list(versions.values_list("action", "target", "details")) == [
        ("policyversion.rollback", "policy-1", {"previous": "policy-2", "reason": "policy-2 rambles", "campaign": "default"})]
    assert version_make_active(version=candidate, user=admin_user, reason="dashboard") == "promote"
    assert AuditEntry.objects.filter(action="policyversion.promote", target="policy-3").count() == 1
    assert versions.count() == 2
    statuses = dict(PolicyVersion.objects.values_list("name", "status"))
    assert statuses == {"policy-1": "retired", "policy-2": "retired", "policy-3": "active"}


def test_a_pruned_version_cannot_be_made_active(admin_user):
    """Its folder is gone: VersionPruned, and the active version, statuses and audit log stay as they were."""
    active = RewardModelVersion.objects.create(name="rm-2", path="reward/rm-2", status="active")
    pruned = RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="pruned")
    with pytest.raises(VersionPruned, match="rm-1 was pruned"):
        version_make_active(version=pruned, user=admin_user, reason="dashboard")
    active.refresh_from_db(), pruned.refresh_from_db()
    assert (active.status, pruned.status) == ("active", "pruned")
    assert not AuditEntry.objects.filter(action__startswith="rewardmodelversion.").exists()


def test_the_base_policy_is_written_and_activated_once(monkeypatch):
    """With no active policy the base generator becomes "policy-base", once; an active policy is returned as it is."""
    made = []

    def materialise(*, name):
        made.append(name)
        return f"policy/{name}", {"format": "base"}

    monkeypatch.setattr(training_bridge, "policy_materialise_base", materialise)
    monkeypatch.setattr(training_bridge, "generator_source", lambda: ("models/gen", "gen.gguf"))
    base = policy_active_or_base()
    assert (base.name, base.status, base.path, base.generator) == (BASE_POLICY, "active", f"policy/{BASE_POLICY}", "models/gen/gen.gguf")
    assert policy_active_or_base().pk == base.pk and made == [BASE_POLICY]
    assert AuditEntry.objects.filter(action="policyversion.promote", target=BASE_POLICY).count() == 1
    other = PolicyVersion.objects.create(name="policy-7", path="policy/policy-7")
    version_activate(version=other, user=None, action="promote")
    assert policy_active_or_base().pk == other.pk and made == [BASE_POLICY]
