"""A record of consequential actions: who did what to which object, and when."""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=128, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.target}"


class StudioSettings(models.Model):
    """Campaign settings that researchers change while the studio runs (one row)."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active: raters label, the supply generates"
        PAUSED = "paused", "Paused: no new leases or comparisons; leases held may still be labelled"

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
    label_target = models.PositiveIntegerField(default=0, help_text="Labels this campaign aims to collect; the dashboard shows the progress (0: no target).")
    guidelines = models.TextField(blank=True, default="", help_text="What raters are asked to judge and how (Markdown), shown on the label page.")
    guidelines_version = models.PositiveIntegerField(default=0, help_text="Raised with every change of the guidelines; 0 while there are none.")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studio settings"
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="studio_settings_single_row")]

    def __str__(self) -> str:
        return "Studio settings"
