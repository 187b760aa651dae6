"""The data model, a module per domain."""

from feedback_app.models.accounts import ApiToken, Profile, Role
from feedback_app.models.audit import AuditEntry
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_ID, Campaign, CampaignMember
from feedback_app.models.comparisons import Assignment, Comparison
from feedback_app.models.imports import ImportJob
from feedback_app.models.judges import Judge, JudgeVersion, Verdict
from feedback_app.models.labels import (
    AgreementTally,
    LabelHourCount,
    LabelMinuteCount,
    LabelHoursClosed,
    PreferenceLabel,
    QualityTallied,
    RaterPairTally,
    RaterTally,
    Winner,
)
from feedback_app.models.prompts import ImportBatch, Prompt, Response, Tag
from feedback_app.models.training import PolicyVersion, RewardModelVersion, RewardScoring, ServingMode, TrainingRun, VersionStatus

__all__ = [
    "AgreementTally",
    "ApiToken",
    "Assignment",
    "AuditEntry",
    "Campaign",
    "CampaignMember",
    "DEFAULT_CAMPAIGN_ID",
    "Comparison",
    "ImportBatch",
    "ImportJob",
    "Judge",
    "JudgeVersion",
    "LabelHourCount",
    "LabelMinuteCount",
    "LabelHoursClosed",
    "PolicyVersion",
    "PreferenceLabel",
    "Profile",
    "Prompt",
    "QualityTallied",
    "RaterPairTally",
    "RaterTally",
    "Response",
    "RewardModelVersion",
    "RewardScoring",
    "Role",
    "ServingMode",
    "Tag",
    "TrainingRun",
    "Verdict",
    "VersionStatus",
    "Winner",
]
