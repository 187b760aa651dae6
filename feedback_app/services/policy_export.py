"""Taking a policy version out of the studio as a plain transformers folder, for vLLM, TGI or transformers."""

from __future__ import annotations

from pathlib import Path

from feedback_app import training_bridge
from feedback_app.models import PolicyVersion, VersionStatus
from feedback_app.selectors.training import version_by_name


class PolicyExportError(Exception):
    """The export cannot run; the message says why."""


class PolicyUnknown(PolicyExportError):
    """No policy version has that name."""


class PolicyPruned(PolicyExportError):
    """Retention removed the version's checkpoint folder, so there are no weights to export."""


class ExportTargetExists(PolicyExportError):
    """The target folder exists and is not empty; an export never writes into it."""


def policy_export(*, name: str, out: Path) -> Path:
    """Write policy version ``name``, its LoRA chain merged, as a transformers folder at ``out``; return the folder.

    Raise PolicyUnknown, PolicyPruned or ExportTargetExists (all PolicyExportError) naming the problem.
    """
    version = version_by_name(model=PolicyVersion, name=name)
    if version is None:
        raise PolicyUnknown(f"no policy version named {name!r}")
    if version.status == VersionStatus.PRUNED:
        raise PolicyPruned(f"{version.name} was pruned from the model store (its checkpoint folder is gone), so it cannot be exported")
    try:
        return Path(training_bridge.policy_export(policy_path=version.path, out=str(out)))
    except FileExistsError as exc:
        raise ExportTargetExists(str(exc)) from None
