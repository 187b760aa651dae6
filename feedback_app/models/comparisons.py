"""What raters are asked: a pair of responses, and who holds it for how long."""

from django.conf import settings
from django.db import models
from django.db.models import Q


def index_set_only(field: str, name: str) -> models.Index:
    """The index of the nullable foreign key ``field``, over its rows where it is set: a row whose key is NULL is not in it, so
    writing that row costs no entry there. Every look-up by a key (a filter on it, a delete's check of what refers to the
    row) still reads it: ``field = x`` implies ``field IS NOT NULL`` to PostgreSQL's planner and to SQLite's."""
    return models.Index(fields=[field], name=name, condition=Q(**{f"{field}__isnull": False}))


class Comparison(models.Model):
    """Two responses to one prompt, to be labelled by ``required_labels`` distinct raters."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Complete"
        RETIRED = "retired", "Retired"
        # Written by an import that has not published yet: no lease, supply, stat or export sees it.
        STAGED = "staged", "Staged (import in progress)"
        # Written by the supply while AI feedback is on: waits for the routing judge's verdict, unseen by raters.
        JUDGING = "judging", "Waiting for the AI judge"

    class Route(models.TextChoices):
        """Where AI feedback sent a comparison ("" when it was not routed: AI feedback off, imports, arena)."""

        NONE = "", "Not routed"
        AI = "ai", "AI-labelled"
        AUDIT = "audit", "AI-labelled and audited by people"
        PEOPLE = "people", "To people (the judge abstained, was unsure or is not trusted)"

    class Kind(models.TextChoices):
        STANDARD = "standard", "Standard"
        ARENA = "arena", "Arena (policy vs policy)"

    prompt = models.ForeignKey("feedback_app.Prompt", on_delete=models.CASCADE, related_name="comparisons")
    response_a = models.ForeignKey("feedback_app.Response", on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey("feedback_app.Response", on_delete=models.CASCADE, related_name="+")
    required_labels = models.PositiveSmallIntegerField(default=1)
    # Kept equal to the number of PreferenceLabel rows from raters, under the row lock.
    label_count = models.PositiveSmallIntegerField(default=0)
    # The slots its leases hold, so a lease's pick reads them from the row (services.leasing): the unexpired, unlabelled
    # leases, kept under the row lock (a lease adds itself; a label, skip or undo counts them again), and the first of their
    # expiries. Until that instant the count is exact or high (a lease that ended without a write to this row, such as a
    # failed qualification's, still counts); from it on the pick counts the leases again. The lock-and-count of a lease
    # stays the rule.
    leases_held = models.PositiveSmallIntegerField(default=0)
    leases_recount_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STANDARD)
    is_gold = models.BooleanField(default=False)
    gold_winner = models.CharField(max_length=16, blank=True, default="")
    # Provenance: what produced this pair.
    # These foreign keys (and the import batch's and the reviewer's) are NULL in most rows, so their indexes are partial
    # (``index_set_only``): a comparison's update that cannot be HOT (its label completes it) writes none of them for a NULL.
    policy_version = models.ForeignKey("feedback_app.PolicyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                       db_index=False)
    reward_model_version = models.ForeignKey(
        "feedback_app.RewardModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    selection_strategy = models.CharField(max_length=32, blank=True, default="")
    # Arena comparisons: the serving mode the policy_version side answered in (ServingMode); "" for others.
    policy_mode = models.CharField(max_length=16, blank=True, default="")
    selection_score = models.FloatField(null=True, blank=True)
    import_batch = models.ForeignKey("feedback_app.ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="comparisons",
                                     db_index=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Review: an admin's final answer overrides the raters' votes in training; an excluded
    # comparison is left out of training and marked in exports.
    adjudicated_winner = models.CharField(max_length=16, blank=True, default="")
    excluded = models.BooleanField(default=False)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    db_index=False)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True, default="")
    # The reward model's probability that A beats B, and which version said so.
    rm_prob_a_wins = models.FloatField(null=True, blank=True)
    # No index of its own: SQLite's planner, without statistics, chose it for "no version yet" (IS NULL, the whole queue)
    # over the partial indexes below; the scoring reads by id, and a version's row is never deleted (retention prunes it).
    rm_prob_version = models.ForeignKey("feedback_app.RewardModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                        db_index=False)
    route = models.CharField(max_length=8, choices=Route.choices, blank=True, default="")
    # For the review queue, kept by the labeling services from the comparison's own labels (services.labeling):
    # a label carries a flag; two or more raters and no answer has two thirds of their votes.
    flagged = models.BooleanField(default=False)
    disputed = models.BooleanField(default=False)
    judging_since = models.DateTimeField(null=True, blank=True)  # when it started waiting for the judge

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "id"], name="comparison_status_id"),
            # the lease's pick: the queue of open comparisons, oldest first (its slot test reads the row, and so costs
            # so little per row that PostgreSQL's planner walked the primary key from the first, long-complete comparison)
            models.Index(fields=["id"], name="comparison_leasable", condition=Q(status="open", is_gold=False)),
            # the pick's quick pass: the open comparisons with a slot free by their row's count, so that it never walks the
            # ones raters hold (a pick behind 2,000 held leases read them all); their lease's update is then not HOT
            models.Index(fields=["id"], name="comparison_slot_free",
                         condition=Q(status="open", is_gold=False, label_count__lt=models.F("required_labels") - models.F("leases_held"))),
            # ... and those whose row counts a lease that may have run out: the first expiry first
            models.Index(fields=["leases_recount_at", "id"], name="comparison_recount_due",
                         condition=Q(status="open", is_gold=False, leases_recount_at__isnull=False)),
            models.Index(fields=["is_gold", "status"], name="comparison_gold"),
            models.Index(fields=["completed_at"], name="comparison_completed_at"),  # agreement per day reads a window
            models.Index(fields=["id"], name="comparison_arena", condition=Q(kind="arena")),  # the arena's votes, not every label
            # the reward model's scoring (services.scoring): arena pairs no version has scored, and the sweep of scored ones
            models.Index(fields=["id"], name="comparison_arena_unscored", condition=Q(kind="arena", rm_prob_version__isnull=True)),
            models.Index(fields=["id"], name="comparison_scored", condition=Q(rm_prob_a_wins__isnull=False)),
            # the review queue: the newest unreviewed flagged or disputed comparisons, without reading every label
            models.Index(fields=["id"], name="comparison_flagged_unreviewed", condition=Q(flagged=True, reviewed_at__isnull=True)),
            models.Index(fields=["id"], name="comparison_disputed_unreviewed", condition=Q(disputed=True, reviewed_at__isnull=True)),
            # an admin's answers and exclusions, read by every training run
            models.Index(fields=["id"], name="comparison_adjudicated", condition=~Q(adjudicated_winner="")),
            models.Index(fields=["id"], name="comparison_excluded", condition=Q(excluded=True)),
            index_set_only("policy_version", "comparison_policy"), index_set_only("reward_model_version", "comparison_reward_model"),
            index_set_only("import_batch", "comparison_import_batch"), index_set_only("reviewed_by", "comparison_reviewed_by"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(response_a=models.F("response_b")), name="comparison_distinct_responses"),
            # Gold pairs are shown to every rater, so they collect as many labels as there are raters.
            models.CheckConstraint(condition=Q(label_count__lte=models.F("required_labels")) | Q(is_gold=True), name="comparison_not_over_collected"),
        ]

    def __str__(self) -> str:
        return f"Comparison {self.pk} ({self.status}, {self.label_count}/{self.required_labels})"


class Assignment(models.Model):
    """A comparison leased to one rater, with the side each response was shown on.

    A rater has at most one assignment per comparison, so nobody sees a comparison twice. A
    lease that passed ``lease_expires_at`` without a label no longer holds a slot.
    """

    class Status(models.TextChoices):
        LEASED = "leased", "Leased"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"

    # No index of their own: assignment_slot leads with the comparison and assignment_once_per_rater with the rater, and
    # each index more is one more write for every lease and label.
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    a_on_left = models.BooleanField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LEASED)
    leased_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # (rater, comparison): also the index behind "comparisons this rater never held", probed for each comparison the pick walks.
        constraints = [models.UniqueConstraint(fields=["rater", "comparison"], name="assignment_once_per_rater")]
        indexes = [
            models.Index(fields=["comparison", "status", "lease_expires_at"], name="assignment_slot"),
            models.Index(fields=["rater", "status", "lease_expires_at"], name="assignment_rater_open"),
            models.Index(fields=["leased_at"], name="assignment_leased_at"),  # who is active: the leases of the last minutes
        ]

    def __str__(self) -> str:
        return f"Assignment {self.pk}: comparison {self.comparison_id} to {self.rater_id} ({self.status})"
