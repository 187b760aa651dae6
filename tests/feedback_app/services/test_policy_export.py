"""Exporting a policy version: the bridge gets the version's path, and every refusal is a typed PolicyExportError."""

import pytest

from feedback_app import training_bridge
from feedback_app.models import PolicyVersion, VersionStatus
from feedback_app.services.policy_export import ExportTargetExists, PolicyPruned, PolicyUnknown, policy_export

pytestmark = pytest.mark.django_db


def test_the_bridge_exports_the_versions_path(tmp_path, monkeypatch):
    """A retired (not pruned) version is exported from its path into OUT; the service returns the folder."""
    PolicyVersion.objects.create(name="policy-00002", path="policy/policy-00002", status=VersionStatus.RETIRED)
    calls = []
    monkeypatch.setattr(training_bridge, "policy_export", lambda *, policy_path, out: calls.append((policy_path, out)) or out)
    assert policy_export(name="policy-00002", out=tmp_path / "out") == tmp_path / "out"
    assert calls == [("policy/policy-00002", str(tmp_path / "out"))]


def test_unknown_and_pruned_versions_are_refused_by_name(tmp_path, monkeypatch):
    """An unknown name raises PolicyUnknown, a pruned version PolicyPruned; the bridge is never called."""
    monkeypatch.setattr(training_bridge, "policy_export", lambda **kwargs: pytest.fail("the bridge must not be called"))
    with pytest.raises(PolicyUnknown, match="'policy-nope'"):
        policy_export(name="policy-nope", out=tmp_path / "out")
    PolicyVersion.objects.create(name="policy-gone", path="policy/policy-gone", status=VersionStatus.PRUNED)
    with pytest.raises(PolicyPruned, match="policy-gone was pruned"):
        policy_export(name="policy-gone", out=tmp_path / "out")


def test_an_occupied_target_is_an_export_error(tmp_path, monkeypatch):
    """The bridge's FileExistsError becomes ExportTargetExists with its message."""
    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status=VersionStatus.ACTIVE)

    def occupied(*, policy_path, out):
        raise FileExistsError(f"{out} already exists and is not an empty folder; export into a new folder")

    monkeypatch.setattr(training_bridge, "policy_export", occupied)
    with pytest.raises(ExportTargetExists, match="already exists"):
        policy_export(name="policy-base", out=tmp_path)
