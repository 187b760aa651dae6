import pytest
from django.core.management import call_command

from feedback_app import training_bridge
from feedback_app.models import RewardModelVersion, VersionStatus

pytestmark = pytest.mark.django_db


def test_models_prune_dry_run_prints_what_would_go_and_removes_nothing(settings, capsys):
    settings.MODEL_RETENTION_KEEP = 1
    for name, status in (("rm-old", VersionStatus.RETIRED), ("rm-new", VersionStatus.ACTIVE)):
        training_bridge.checkpoint_store().write("reward", name, {}, lambda tmp: (tmp / "heads.pt").write_bytes(b"w"))
        RewardModelVersion.objects.create(name=name, path=f"reward/{name}", status=status)
    call_command("models_prune", "--dry-run")
    assert "reward models: would remove 1: rm-old" in capsys.readouterr().out
    assert training_bridge.version_folder("reward/rm-old").is_dir()
    call_command("models_prune")
    assert "reward models: removed 1: rm-old" in capsys.readouterr().out
    assert not training_bridge.version_folder("reward/rm-old").exists()
    assert RewardModelVersion.objects.get(name="rm-old").status == VersionStatus.PRUNED
