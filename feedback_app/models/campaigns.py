"""Campaigns: the unit of work. Each has its prompts, members, rules and guidelines.

The default campaign (pk 1, slug ``default``) holds everything a studio had before campaigns
existed; a user who belongs to no campaign belongs to it with their studio role, so a studio with
one campaign works as it did. Studio admins see every campaign.
"""

from django.conf import settings
from django.db import models

from feedback_app.models.accounts import Role

DEFAULT_CAMPAIGN_ID = 1
DEFAULT_CAMPAIGN_SLUG = "default"


class Campaign(models.Model):
    """A study: its name, its rules for labelling, and its guidelines. Researchers change the rules while it runs."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active: raters label, the supply generates"
        PAUSED = "paused", "Paused: no new leases or comparisons; leases held may still be labelled"
        ARCHIVED = "archived", "Archived: read-only; nobody labels, nothing is generated"

    slug = models.SlugField(max_length=64, unique=True, help_text="The campaign's name in URLs: /c/<slug>/label/.")
    name = models.CharField(max_length=200)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="The campaign whose active models this one started from (none: the base models).")
    created_at = models.DateTimeField(auto_now_add=True)
    labels_per_comparison = models.PositiveIntegerField(
        null=True, blank=True, help_text="Labels each new comparison needs, from distinct raters (empty: LABELS_PER_COMPARISON).")
    lease_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long a rater holds a comparison, and may undo a label (empty: LEASE_SECONDS).")
    gold_rate = models.FloatField(default=0.1, help_text="Share of a rater's comparisons that are gold pairs, when any are left for them.")
    arena_share = models.FloatField(default=0.2, help_text="Share of new comparisons that pit the newest policy against an earlier one.")
    weight_by_trust = models.BooleanField(default=False, help_text="Weight each label in training by its rater's trust score.")
    min_trust = models.FloatField(default=0.0, help_text="Leave out of training the labels of raters whose trust is below this.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    criteria = models.JSONField(default=list, blank=True, help_text="The criteria raters may judge separately; empty: LABEL_CRITERIA.")
    flags = models.JSONField(default=list, blank=True, help_text="The flags raters may raise; empty: LABEL_FLAGS.")
    qualification_pairs = models.PositiveIntegerField(
        default=0, help_text="A new rater first labels this many gold pairs and is admitted only at qualification_accuracy or above (0: no qualification).")
    qualification_accuracy = models.FloatField(default=0.7, help_text="The share of the qualification's gold pairs a new rater must get right.")
    selection_strategy = models.CharField(
        max_length=32, blank=True, default="", choices=[(s, s) for s in ("uncertain", "thompson", "best_vs_worst", "random")],
        help_text="How the campaign's new policy versions pick the pair to show among their candidates (empty: SELECTION_STRATEGY).")
    refit_every_n_labels = models.PositiveIntegerField(
        null=True, blank=True, help_text="A fast reward refit after this many new labels of the campaign (0: none by itself; empty: REFIT_EVERY_N_LABELS).")
    policy_every_n_labels = models.PositiveIntegerField(
        null=True, blank=True, help_text="A policy update (DPO) after this many new labels of the campaign (0: none by itself; empty: POLICY_EVERY_N_LABELS).")
    ai_feedback = models.BooleanField(
        default=True, help_text="With AI feedback on in the studio (AI_FEEDBACK), its routing judge labels the comparisons of this campaign it is sure of.")
    ai_audit_share = models.FloatField(
        null=True, blank=True, help_text="Share of this campaign's AI-labelled comparisons that also go to people (empty: AI_AUDIT_SHARE).")
    label_target = models.PositiveIntegerField(default=0, help_text="Labels this campaign aims to collect; the dashboard shows the progress (0: no target).")
    guidelines = models.TextField(blank=True, default="", help_text="What raters are asked to judge and how (Markdown), shown on the label page.")
    guidelines_version = models.PositiveIntegerField(default=0, help_text="Raised with every change of the guidelines; 0 while there are none.")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_default(self) -> bool:
        return self.pk == DEFAULT_CAMPAIGN_ID

    @property
    def required_labels(self) -> int:
        """Labels each new comparison of the campaign needs."""
        return self.labels_per_comparison or settings.LABELS_PER_COMPARISON

    @property
    def strategy(self) -> str:
        """The pair-selection strategy of the campaign's new policy versions."""
        return self.selection_strategy or settings.SELECTION_STRATEGY

    @property
    def refit_every(self) -> int:
        """New labels of the campaign between automatic fast refits (0: none)."""
        return settings.REFIT_EVERY_N_LABELS if self.refit_every_n_labels is None else self.refit_every_n_labels

    @property
    def policy_every(self) -> int:
        """New labels of the campaign between automatic policy updates (0: none)."""
        return settings.POLICY_EVERY_N_LABELS if self.policy_every_n_labels is None else self.policy_every_n_labels

    @property
    def audit_share(self) -> float:
        """Share of the campaign's AI-labelled comparisons that also go to people."""
        return settings.AI_AUDIT_SHARE if self.ai_audit_share is None else self.ai_audit_share

    @property
    def lease_time(self) -> int:
        """Seconds a lease lasts in the campaign (and the window for undo)."""
        return self.lease_seconds or settings.LEASE_SECONDS


class CampaignMember(models.Model):
    """A user's place in one campaign: their role there, the guidelines they read, their qualification."""

    class Qualification(models.TextChoices):
        NONE = "", "Not asked"
        EXEMPT = "exempt", "Exempt: labelled before qualification was asked for"
        PENDING = "pending", "Labelling the qualification's gold pairs"
        PASSED = "passed", "Admitted"
        FAILED = "failed", "Not admitted"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="campaign_memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.RATER)
    guidelines_seen = models.PositiveIntegerField(default=0, help_text="The guidelines' version this member last confirmed reading.")
    qualification = models.CharField(max_length=8, choices=Qualification.choices, default=Qualification.NONE, blank=True)
    qualification_correct = models.PositiveIntegerField(null=True, blank=True)
    qualification_n = models.PositiveIntegerField(null=True, blank=True)
    qualification_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign_id", "id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "user"], name="campaign_member_once")]

    def __str__(self) -> str:
        return f"{self.user} in {self.campaign} ({self.role})"
