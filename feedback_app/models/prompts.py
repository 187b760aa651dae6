"""What raters judge: prompts, and the responses to them."""

from django.conf import settings
from django.db import models

from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_ID


class Tag(models.Model):
    name = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ImportBatch(models.Model):
    """One import of a file: prompts, comparisons or already-labelled preferences."""

    class Kind(models.TextChoices):
        PROMPTS = "prompts", "Prompts"
        PREFERENCES = "preferences", "Preferences"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    campaign = models.ForeignKey("feedback_app.Campaign", on_delete=models.PROTECT, related_name="import_batches", default=DEFAULT_CAMPAIGN_ID)
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    counts = models.JSONField(default=dict, blank=True)
    # A background import stages its rows under an unpublished batch (its comparisons "staged",
    # its prompts left out of supply) and publishes them all in one short transaction.
    published = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"{self.kind} from {self.filename} ({self.created_at:%Y-%m-%d %H:%M})"


class Prompt(models.Model):
    """A request to answer, with the conversation that led to it (a list of role/content turns)."""

    campaign = models.ForeignKey(
        "feedback_app.Campaign", on_delete=models.PROTECT, related_name="prompts", default=DEFAULT_CAMPAIGN_ID)
    text = models.TextField()
    context = models.JSONField(default=list, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="prompts")
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=64, default="api", db_index=True)
    import_batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="prompts")
    # A worker generating candidates for this prompt holds it until then (see services.supply).
    generation_lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text if len(self.text) <= 80 else self.text[:77] + "..."


class Response(models.Model):
    """A candidate answer to a prompt: imported, produced by a policy version, or a rater's rewrite of another."""

    class Source(models.TextChoices):
        IMPORTED = "imported", "Imported"
        POLICY = "policy", "Policy"
        HUMAN_EDIT = "human_edit", "Rater's rewrite"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    text = models.TextField()
    policy_version = models.ForeignKey(
        "feedback_app.PolicyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="responses"
    )
    truncated = models.BooleanField(default=False)  # generated, and the token budget ran out before the reply ended
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IMPORTED, db_index=True)
    # A rewrite's starting point; None for a reply that is not a rewrite, or one written from scratch.
    # PROTECT: the rewrite's meaning (better than this reply, by so many edits) needs it; a prompt's
    # deletion still removes both, as they go together.
    edited_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="rewrites")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    @property
    def origin(self) -> str:
        return self.policy_version.name if self.policy_version_id else self.source

    def __str__(self) -> str:
        return self.text if len(self.text) <= 80 else self.text[:77] + "..."
