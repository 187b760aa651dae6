"""The models the loop produces, and the runs that produce them."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_ID


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
    PRUNED = "pruned", "Pruned (folder removed)"


class ServingMode(models.TextChoices):
    """How a policy version answers: the two policy tiers' way of serving (a trained version is served in either)."""

    SAMPLE = "sample", "Sample (one reply)"
    RERANK = "rerank", "Rerank (best of n by the active reward model)"


class VersionQuerySet(models.QuerySet):
    def active(self) -> models.QuerySet:
        """Return the active version (at most one: a database constraint), as a queryset."""
        return self.filter(status=VersionStatus.ACTIVE)


class _Version(models.Model):
    """An immutable checkpoint folder under MODEL_STORE, and what is known about it."""

    objects = VersionQuerySet.as_manager()

    name = models.CharField(max_length=64, unique=True)
    # Each campaign has its own line: its labels train it, its raters see it, one version of it is active.
    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.PROTECT, default=DEFAULT_CAMPAIGN_ID, related_name="+")
    path = models.CharField(max_length=255, help_text="Folder relative to MODEL_STORE (a campaign started from another's models shares its folders).")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE, db_index=True)
    metrics = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    # Retention removes the folder of an old version but keeps the row, for its metrics and history.
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class RewardModelVersion(_Version):
    tier = models.CharField(max_length=16, default="fast")
    backbone = models.CharField(max_length=255, blank=True)
    # The labels it learned from: {"first_label_id", "last_label_id", "n_pairs", ...}.
    data_range = models.JSONField(default=dict, blank=True)

    class Meta(_Version.Meta):
        constraints = [models.UniqueConstraint(fields=["campaign", "status"], condition=Q(status="active"), name="one_active_reward_model_per_campaign")]


class RewardScoring(models.Model):
    """How far a campaign's reward-model scoring has got (``services.scoring``): a walk of its labels and a sweep of its old scores.

    Each label's comparison is scored once by the version active when the walk reaches it; an older
    score is refreshed by the sweep, which goes round the campaign's scored comparisons by id and
    may look at RM_RESCORE_PER_LABEL of them for each label walked, so the work per label stays the
    same however many comparisons the campaign has scored.
    """

    campaign = models.OneToOneField("feedback_app.Campaign", primary_key=True, on_delete=models.CASCADE, related_name="+")
    through_label_id = models.BigIntegerField(default=0)  # the campaign's labels up to this id were walked
    swept_through_id = models.BigIntegerField(default=0)  # the sweep's round has looked at the comparisons up to this id
    sweep_credit = models.PositiveIntegerField(default=0)  # how many scored comparisons the sweep may look at still

    def __str__(self) -> str:
        return f"Reward scoring of campaign {self.campaign_id}: labels through {self.through_label_id}, swept through {self.swept_through_id}"


class PolicyVersion(_Version):
    """A generator plus the reward model, sampling settings and pair-selection strategy it uses."""

    generator = models.CharField(max_length=255, blank=True)
    reward_model = models.ForeignKey(RewardModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sampling = models.JSONField(default=dict, blank=True)
    selection_strategy = models.CharField(max_length=32, default="uncertain")
    # Rerank re-points at each promoted reward model without a new version, so arena votes
    # accumulate per trained version whichever reward model reranked its replies.
    serving_mode = models.CharField(max_length=16, choices=ServingMode.choices, default=ServingMode.SAMPLE)

    class Meta(_Version.Meta):
        constraints = [models.UniqueConstraint(fields=["campaign", "status"], condition=Q(status="active"), name="one_active_policy_per_campaign")]


class TrainingRun(models.Model):
    class Kind(models.TextChoices):
        REWARD_FAST = "reward_fast", "Reward model, fast tier"
        REWARD_FULL = "reward_full", "Reward model, full tier"
        POLICY_DPO = "policy_dpo", "Policy, DPO"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual (admin)"
        API = "api", "API"
        CLI = "cli", "Command line"
        AUTO = "auto", "Automatic (every N labels)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.PROTECT, default=DEFAULT_CAMPAIGN_ID, related_name="+")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    reward_model_version = models.ForeignKey(RewardModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    policy_version = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Its message to the workers: when it was last sent (or tried), how many times, and since when
    # sending fails. The reaper re-sends a queued run whose message was lost (services.training).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    enqueue_count = models.PositiveIntegerField(default=0)
    enqueue_failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # At most one automatic run of a kind waiting or running per campaign: the every-N-labels
            # trigger may fire from several web processes at once.
            models.UniqueConstraint(fields=["campaign", "trigger", "kind"], condition=Q(trigger="auto", status__in=["queued", "running"]),
                                    name="one_pending_auto_run_per_campaign_kind"),
            # A second request for a kind already waiting in the campaign gets the waiting run (services.training).
            # With one waiting run per campaign and kind, the workers' first-in-first-out queue serves the
            # campaigns in turn: a campaign's run waits for at most one run of each other campaign.
            models.UniqueConstraint(fields=["campaign", "kind"], condition=Q(status="queued"), name="one_queued_run_per_campaign_kind"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} {self.kind} ({self.status})"
