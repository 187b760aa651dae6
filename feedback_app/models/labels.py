"""What raters said: one preference label per rater and comparison."""

import uuid

from django.conf import settings
from django.db import models

from feedback_app.models.comparisons import index_set_only


class Winner(models.TextChoices):
    """The verdict in terms of the underlying responses, never of the side they were shown on."""

    A = "a", "Response A"
    B = "b", "Response B"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


def side_to_winner(side: str, *, a_on_left: bool) -> str:
    """Translate a choice made on screen ("left", "right", "tie", "both_bad") into response terms."""
    if side == "left":
        return Winner.A if a_on_left else Winner.B
    if side == "right":
        return Winner.B if a_on_left else Winner.A
    return side


def winner_to_side(winner: str, *, a_on_left: bool) -> str:
    """Translate a verdict in response terms back into what the rater saw."""
    if winner == Winner.A:
        return "left" if a_on_left else "right"
    if winner == Winner.B:
        return "right" if a_on_left else "left"
    return winner


class PreferenceLabel(models.Model):
    """A rater's judgement of a comparison.

    Imported preferences have no rater and no assignment; they point at their import batch. An AI
    label has no rater either: it names the judge version that gave it (``judge_version``), one per
    comparison, and never counts in ``Comparison.label_count`` (the raters' slots).
    """

    class Strength(models.IntegerChoices):
        SLIGHTLY = 1, "Slightly better"
        CLEARLY = 2, "Clearly better"
        MUCH = 3, "Much better"

    # No index of its own: label_once_per_rater leads with it.
    comparison = models.ForeignKey("feedback_app.Comparison", on_delete=models.CASCADE, related_name="labels", db_index=False)
    # The comparison's campaign (its prompt's), copied when the label is made (``save`` fills it in; bulk writers set it), so
    # counts of a campaign's labels by time read one index range (``label_campaign_created``) instead of looking up every
    # label's comparison and prompt. No foreign-key constraint: it is a copy, and every label's insert would otherwise
    # share-lock the campaign's one row.
    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False)
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="labels")
    assignment = models.OneToOneField(
        "feedback_app.Assignment", null=True, blank=True, on_delete=models.PROTECT, related_name="label"
    )
    winner = models.CharField(max_length=16, choices=Winner.choices)
    strength = models.PositiveSmallIntegerField(choices=Strength.choices, default=Strength.CLEARLY)
    # Per-criterion verdicts, also in terms of responses: {"helpfulness": "a", ...}.
    criteria = models.JSONField(default=dict, blank=True)
    rationale = models.TextField(blank=True, default="")
    flags = models.JSONField(default=list, blank=True)
    edited_text = models.TextField(blank=True, default="")  # as submitted; ``rewrite`` is the response it made, if any
    # PROTECT: a rewrite belongs to its label; it goes when the label is undone (services.labeling).
    rewrite = models.OneToOneField("feedback_app.Response", null=True, blank=True, on_delete=models.PROTECT, related_name="rewrite_label")
    a_on_left = models.BooleanField(null=True, blank=True)
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    guidelines_version = models.PositiveIntegerField(null=True, blank=True, help_text="The guidelines' version when a rater gave it (0: none yet); null for AI and imported labels.")
    # Partial indexes (``index_set_only``): a rater's label, the most common, has neither.
    import_batch = models.ForeignKey("feedback_app.ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="labels",
                                     db_index=False)
    judge_version = models.ForeignKey("feedback_app.JudgeVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="labels",
                                      db_index=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["campaign", "created_at"], name="label_campaign_created"),
                   index_set_only("import_batch", "label_import_batch"), index_set_only("judge_version", "label_judge_version")]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "rater"], name="label_once_per_rater"),
            models.UniqueConstraint(fields=["comparison"], condition=models.Q(judge_version__isnull=False), name="ai_label_once_per_comparison"),
            models.CheckConstraint(condition=models.Q(judge_version__isnull=True) | models.Q(rater__isnull=True), name="ai_label_has_no_rater"),
        ]

    def save(self, *args, **kwargs) -> None:
        if self.campaign_id is None and self.comparison_id is not None:
            comparisons = self._meta.get_field("comparison").related_model.objects
            self.campaign_id = comparisons.filter(pk=self.comparison_id).values_list("prompt__campaign_id", flat=True).first()
        super().save(*args, **kwargs)

    @property
    def label_source(self) -> str:
        """Return ``ai`` for a judge's label, ``human`` for a rater's or an imported one."""
        return "ai" if self.judge_version_id else "human"

    def __str__(self) -> str:
        return f"Label {self.pk}: comparison {self.comparison_id} → {self.winner}"


class LabelHourCount(models.Model):
    """How many labels a campaign received in one UTC hour, up to the closed instant: all of them (raters', imported and AI), and
    the raters'.

    Written by ``services.label_tally`` for the labels before ``LabelHoursClosed.through`` (the hour
    holding it counts them up to it); a label deleted from before it reopens its hour, so the counts
    never disagree with the rows.
    """

    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()  # its start
    labels = models.PositiveIntegerField()
    rater_labels = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "hour"], name="label_hour_count_once")]


class LabelMinuteCount(models.Model):
    """How many labels the raters gave a campaign in one UTC minute of the last hour before the closed instant: the dashboard's
    labels per minute read these rows and the live labels after the instant, not the last minutes' labels one by one.

    Written by ``services.label_tally``'s close with the hour rows (each minute closes once), taken down with them when a
    stretch reopens, and dropped once an hour old.
    """

    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()  # its start
    rater_labels = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "minute"], name="label_minute_count_once")]


class LabelHoursClosed(models.Model):
    """The instant (a whole minute) before which ``LabelHourCount`` holds every label, for every campaign (one row, id 1)."""

    through = models.DateTimeField()


class QualityTallied(models.Model):
    """The instant before which every completed comparison's rater labels are in the quality tallies (one row, id 1).

    ``RaterTally``, ``AgreementTally`` and ``RaterPairTally`` hold the labels of the comparisons that
    completed before ``through`` (``services.quality_tally`` closes them); the quality figures add
    the labels of every other comparison (open, or completed since) live. A rater's undo takes its
    comparison (or its gold label) out of them; any other label deleted from a tallied comparison,
    or a tallied comparison made gold, drops this row and the tallies, and the next close rebuilds
    them: the figures never disagree with the rows.
    """

    through = models.DateTimeField()
    # a new one with every rebuild: what was kept beside the tallies (a worker's training data) is valid for one generation
    generation = models.UUIDField(default=uuid.uuid4)


class RaterTally(models.Model):
    """One rater's quality counts over a campaign's tallied comparisons (see ``selectors.quality_rows.QualityTally``)."""

    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.CASCADE, related_name="+")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    counts = models.JSONField(default=dict)  # {"n_labels": …, "gold_correct": …, …}
    times = models.JSONField(default=dict)  # time on task, {"milliseconds, bucketed": labels}

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "rater"], name="rater_tally_once")]


class AgreementTally(models.Model):
    """The raters' agreement over a campaign's tallied comparisons, in sums that add up: pairs and coincidence matrices.

    One row per UTC day the comparisons completed (the dashboard's agreement over time) and one
    with no day, over all of them.
    """

    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(null=True)
    n_units = models.PositiveIntegerField(default=0)
    agreeing_pairs = models.PositiveBigIntegerField(default=0)
    pairs = models.PositiveBigIntegerField(default=0)
    nominal = models.JSONField(default=list)  # [[category, category, o_ck], …] of the winners
    ordinal = models.JSONField(default=list)  # the same of the ordinal values (−3…3)
    # (the row of all days) the pairs of raters sharing enough comparisons for κ, the sum of their κ and how many have one
    pairs_shared = models.PositiveIntegerField(default=0)
    kappa_sum = models.FloatField(default=0.0)
    kappa_n = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "day"], name="agreement_tally_day_once"),
            models.UniqueConstraint(fields=["campaign"], condition=models.Q(day__isnull=True), name="agreement_tally_total_once"),
        ]


class RaterPairTally(models.Model):
    """Two raters' confusion table over the tallied comparisons they share (for Cohen's κ per pair); rater_1 < rater_2."""

    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.CASCADE, related_name="+")
    rater_1 = models.PositiveIntegerField()
    rater_2 = models.PositiveIntegerField()
    n = models.PositiveIntegerField()  # units shared
    kappa = models.FloatField(null=True)  # Cohen's κ of the table (once n reaches MIN_SHARED_FOR_KAPPA)
    table = models.JSONField(default=list)  # [[winner of rater_1, winner of rater_2, units], …]

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "rater_1", "rater_2"], name="rater_pair_tally_once")]
        indexes = [models.Index(fields=["campaign", "n"], name="rater_pair_tally_shared")]
