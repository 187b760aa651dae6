"""manage.py export_policy: the service's export with the version's path, its refusals as a CommandError.

What the export writes is tested in tests/rm_trainer/test_export.py; the service in tests/feedback_app/services/test_policy_export.py.
"""

import pytest
from django.core.management import CommandError, call_command

from feedback_app import training_bridge
from feedback_app.models import PolicyVersion, VersionStatus

pytestmark = pytest.mark.django_db


def test_export_policy_calls_the_bridge_with_the_versions_path(tmp_path, capsys, monkeypatch):
    """The command exports the named version's path into OUT and says where it wrote."""
    PolicyVersion.objects.create(name="policy-00001", path="policy/policy-00001", status=VersionStatus.ACTIVE)
    calls = []
    monkeypatch.setattr(training_bridge, "policy_export", lambda *, policy_path, out: calls.append((policy_path, out)) or out)
    call_command("export_policy", "policy-00001", str(tmp_path / "served"))
    assert calls == [("policy/policy-00001", str(tmp_path / "served"))]
    assert f"wrote policy-00001 to {tmp_path / 'served'}" in capsys.readouterr().out


def test_unknown_and_pruned_versions_are_command_errors_naming_them(tmp_path, monkeypatch):
    """An unknown name and a pruned version stop the command with a CommandError that names them."""
    monkeypatch.setattr(training_bridge, "policy_export", lambda **kwargs: pytest.fail("the bridge must not be called"))
    with pytest.raises(CommandError, match="no policy version named 'policy-nope'"):
        call_command("export_policy", "policy-nope", str(tmp_path / "served"))
    PolicyVersion.objects.create(name="policy-gone", path="policy/policy-gone", status=VersionStatus.PRUNED)
    with pytest.raises(CommandError, match="policy-gone was pruned"):
        call_command("export_policy", "policy-gone", str(tmp_path / "served"))
