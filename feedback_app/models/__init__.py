"""The data model, a module per domain."""

from feedback_app.models.accounts import ApiToken, Profile, Role
from feedback_app.models.audit import AuditEntry, StudioSettings
from feedback_app.models.comparisons import Assignment, Comparison
from feedback_app.models.imports import ImportJob
from feedback_app.models.judges import Judge, JudgeVersion, Verdict
from feedback_app.models.labels import PreferenceLabel, Winner
from feedback_app.models.prompts import ImportBatch, Prompt, Response, Tag
from feedback_app.models.training import PolicyVersion, RewardModelVersion, ServingMode, TrainingRun, VersionStatus

__all__ = [
    "ApiToken",
    "Assignment",
    "AuditEntry",
    "Comparison",
    "ImportBatch",
    "ImportJob",
    "Judge",
    "JudgeVersion",
    "PolicyVersion",
    "PreferenceLabel",
    "Profile",
    "Prompt",
    "Response",
    "RewardModelVersion",
    "Role",
    "ServingMode",
    "StudioSettings",
    "Tag",
    "TrainingRun",
    "Verdict",
    "VersionStatus",
    "Winner",
]
