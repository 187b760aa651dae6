"""AI feedback: the judges that label comparisons, their versions, and the verdicts they gave."""

from django.conf import settings
from django.db import models
from django.db.models import Q

REMOTE_WARNING = (
    "A remote judge sends every prompt and both replies it judges off this machine, to JUDGE_URL. "
    "Enable it only for an endpoint you trust with that text."
)


class Judge(models.Model):
    """A named source of AI labels: the active reward-model ensemble, a local chat model, or a remote endpoint.

    At most one judge routes new comparisons (``routing``); any enabled judge may back-fill verdicts
    on labelled comparisons to measure itself against people first. A remote judge stays off until an
    admin enables it, having seen ``REMOTE_WARNING``.
    """

    class Kind(models.TextChoices):
        REWARD_MODEL = "reward_model", "Reward-model ensemble"
        LOCAL = "local", "Local chat model (JUDGE_MODEL)"
        REMOTE = "remote", "OpenAI-compatible endpoint (JUDGE_URL)"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    version = models.CharField(
        max_length=64, blank=True, default="1",
        help_text="Raise it when the model or its prompt changes: verdicts are cached per version. "
                  "The reward-model judge takes the active reward model's name as its version.",
    )
    enabled = models.BooleanField(default=False)
    routing = models.BooleanField(default=False, help_text="This judge's confident verdicts become labels (one judge at most).")
    confidence_threshold = models.FloatField(
        default=0.8, help_text="Verdicts at least this confident become labels; the rest go to people (see the label-quality page).",
    )
    remote_enabled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    remote_enabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["routing"], condition=Q(routing=True), name="judge_one_routing"),
            models.CheckConstraint(condition=Q(confidence_threshold__gte=0.5, confidence_threshold__lte=1.0), name="judge_threshold_range"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class JudgeVersion(models.Model):
    """One version of a judge: what its verdicts and labels are stored with."""

    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["judge", "version"], name="judge_version_once")]

    @property
    def label(self) -> str:
        """Return the label source as exports and pages name it: ``ai:<judge>``."""
        return f"ai:{self.judge.name}"

    def __str__(self) -> str:
        return f"{self.judge.name}@{self.version}"


class Verdict(models.Model):
    """A judge version's answer on one comparison, in terms of responses A and B.

    ``cache_key`` is the hash of (prompt, reply A, reply B): the same version never asks twice about
    the same texts. An abstention has no choice and says why (``reason``); ``detail`` keeps what each
    order of asking answered.
    """

    class Choice(models.TextChoices):
        A = "a", "Response A"
        B = "b", "Response B"

    class Reason(models.TextChoices):
        NONE = "", "—"
        FLIPPED = "flipped", "Flipped with the order"
        UNPARSEABLE = "unparseable", "Unparseable answer"
        ERROR = "error", "The judge failed"
        TIE = "tie", "No preference"

    judge_version = models.ForeignKey(JudgeVersion, on_delete=models.PROTECT, related_name="verdicts")
    comparison = models.ForeignKey("feedback_app.Comparison", on_delete=models.CASCADE, related_name="verdicts")
    cache_key = models.CharField(max_length=64, db_index=True)
    choice = models.CharField(max_length=1, choices=Choice.choices, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    abstained = models.BooleanField(default=False)
    reason = models.CharField(max_length=16, choices=Reason.choices, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    backfill = models.BooleanField(default=False, help_text="Asked after people labelled the comparison, to measure the judge.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["judge_version", "comparison"], name="verdict_once_per_version"),
            models.CheckConstraint(condition=Q(abstained=True) | ~Q(choice=""), name="verdict_choice_or_abstain"),
        ]

    def __str__(self) -> str:
        return f"Verdict {self.pk}: {self.judge_version} on comparison {self.comparison_id} → {self.choice or self.reason}"
