"""Request and response shapes of the API."""

import re

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from rest_framework import serializers

from feedback_app.models import Assignment, PreferenceLabel, ServingMode
from feedback_app.models.labels import winner_to_side
from feedback_app.selectors.exports import FORMATS, LABEL_SOURCES
from feedback_app.services.json_input import INT_MAX, INT_MIN
from feedback_app.services.labeling import (
    CHOICES,
    CRITERION_CHOICES,
    DEFAULT_STRENGTH,
    EDITED_FROM_CHOICES,
    EDITED_TEXT_MAX_CHARS,
    STRENGTHS,
    InvalidSubmission,
    LabelSubmission,
)

PG_INTEGER_MAX = 2**31 - 1  # an IntegerField column on PostgreSQL
_ASCII_INT = re.compile(r"-?[0-9]{1,19}")


class StrictIntegerField(serializers.IntegerField):
    """An integer that fits its column; in a query string, ASCII digits only (int() would take "٣")."""

    def __init__(self, *, strings: bool = False, **kwargs) -> None:
        kwargs.setdefault("min_value", INT_MIN)
        kwargs.setdefault("max_value", INT_MAX)
        self.strings = strings  # query parameters arrive as text; JSON bodies must send a number
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, float) and not data.is_integer()):
            self.fail("invalid")
        if isinstance(data, str) and not (self.strings and _ASCII_INT.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans (DRF's CharField turns 1 into "1")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A number that is a JSON number: no booleans and no strings (DRF's FloatField takes True and "1.5")."""

    def to_internal_value(self, data):
        if isinstance(data, (bool, str)):
            self.fail("invalid")
        return super().to_internal_value(data)


class ResponseSideSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    truncated = serializers.BooleanField(help_text="The reply hit the generation token budget and is cut off.")


class NextComparisonSerializer(serializers.Serializer):
    """A leased comparison as the rater sees it."""

    id = serializers.IntegerField()
    prompt = serializers.CharField()
    context = serializers.ListField(child=serializers.DictField())
    left = ResponseSideSerializer()
    right = ResponseSideSerializer()
    lease_expires_at = serializers.DateTimeField()

    @staticmethod
    def from_assignment(assignment: Assignment) -> dict:
        c = assignment.comparison
        left, right = (c.response_a, c.response_b) if assignment.a_on_left else (c.response_b, c.response_a)
        return {
            "id": c.pk,
            "prompt": c.prompt.text,
            "context": c.prompt.context,
            "left": {"id": left.pk, "text": left.text, "truncated": left.truncated},
            "right": {"id": right.pk, "text": right.text, "truncated": right.truncated},
            "lease_expires_at": assignment.lease_expires_at,
        }


class CriteriaField(serializers.DictField):
    """Criterion name -> side; the names are the campaign's LabelSubmission.criterion_names() (the schema lists the default campaign's)."""


class CriteriaFieldSchema(OpenApiSerializerFieldExtension):
    target_class = CriteriaField

    def map_serializer_field(self, auto_schema, direction):
        side = {"type": "string", "enum": list(CRITERION_CHOICES)}
        return {"type": "object", "properties": {name: side for name in LabelSubmission.criterion_names()}, "additionalProperties": False}


# A label as posted. LabelSubmission holds the rules; its refusal is reported as an error of the
# field at fault. (No docstring: it would become the schema's description.)
class LabelRequestSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=CHOICES)
    strength = StrictIntegerField(min_value=min(STRENGTHS), max_value=max(STRENGTHS), default=DEFAULT_STRENGTH)
    criteria = CriteriaField(child=serializers.ChoiceField(choices=CRITERION_CHOICES), required=False, default=dict)
    rationale = StrictCharField(required=False, allow_blank=True, max_length=5000, default="", trim_whitespace=True)
    flags = serializers.ListField(child=serializers.ChoiceField(choices=[]), required=False, default=list, max_length=10)
    edited_text = StrictCharField(
        required=False, allow_blank=True, max_length=EDITED_TEXT_MAX_CHARS, default="", trim_whitespace=False,
        help_text="A rewrite of the better reply, as the rater would have written it; absent or empty for none. It is stored as a "
                  "response (source human_edit) that counts as better than both replies. White space alone is refused; a text the "
                  "same as one of the replies is no rewrite (the label is stored without one).",
    )
    edited_from = serializers.ChoiceField(
        choices=EDITED_FROM_CHOICES, required=False, allow_blank=True, default="",
        help_text="The reply the rewrite started from, as shown. Left or right better: empty or that side (another side is a 400). "
                  "Tie or both bad: either side, or empty for a rewrite written from scratch.",
    )
    time_on_task_ms = StrictIntegerField(required=False, min_value=0, max_value=PG_INTEGER_MAX, allow_null=True, default=None)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read here, not at import: the schema then lists the flags the campaign has (criteria: CriteriaFieldSchema).
        self.fields["flags"].child.choices = LabelSubmission.flag_names(self.context.get("campaign"))

    def validate(self, data: dict) -> dict:
        try:
            self._submission = LabelSubmission(
                choice=data["choice"], strength=data["strength"], criteria=data["criteria"], rationale=data["rationale"],
                flags=tuple(data["flags"]), edited_text=data["edited_text"], edited_from=data["edited_from"], time_on_task_ms=data["time_on_task_ms"],
                campaign=self.context.get("campaign"),
            )
        except InvalidSubmission as exc:
            raise serializers.ValidationError({exc.field: [str(exc)]}) from None
        return data

    def submission(self) -> LabelSubmission:
        """Return the submission the valid data make (call after is_valid)."""
        return self._submission

    @classmethod
    def read(cls, data, *, campaign) -> LabelSubmission:
        """Return the submission ``data`` makes, or raise the serializer's ValidationError.

        A plain label (a side, perhaps a strength and a time, nothing else given or each left empty) is read in a few
        comparisons; anything else goes through the serializer, which reads it the same way and names what is wrong.
        Building the serializer's fields (DRF deep-copies them for every instance) was a tenth of a label's CPU under load.
        """
        plain = plain_label(data, campaign=campaign)
        if plain is not None:
            return plain
        serializer = cls(data=data, context={"campaign": campaign})
        serializer.is_valid(raise_exception=True)
        return serializer.submission()


_PLAIN_EMPTY = {"criteria": {}, "rationale": "", "flags": [], "edited_text": "", "edited_from": ""}  # as absent: each field's default


def plain_label(data, *, campaign) -> LabelSubmission | None:
    """``LabelRequestSerializer``'s reading of a plain label, or None where the serializer must read it (see ``read``)."""
    if type(data) is not dict or type(data.get("choice")) is not str or data["choice"] not in CHOICES:
        return None
    strength = data.get("strength", DEFAULT_STRENGTH)
    if type(strength) is not int or strength not in STRENGTHS:
        return None
    time_on_task_ms = data.get("time_on_task_ms")
    if time_on_task_ms is not None and (type(time_on_task_ms) is not int or not 0 <= time_on_task_ms <= PG_INTEGER_MAX):
        return None
    if any(data.get(name, empty) != empty for name, empty in _PLAIN_EMPTY.items()):
        return None
    try:
        return LabelSubmission(choice=data["choice"], strength=strength, time_on_task_ms=time_on_task_ms, campaign=campaign)
    except InvalidSubmission:
        return None


class LabelSerializer(serializers.Serializer):
    """A stored label, in the terms of the side its rater saw."""

    id = serializers.IntegerField()
    comparison_id = serializers.IntegerField()
    choice = serializers.CharField()
    winner_response_id = serializers.IntegerField(allow_null=True)
    strength = serializers.IntegerField()
    criteria = serializers.DictField()
    rationale = serializers.CharField()
    flags = serializers.ListField(child=serializers.CharField())
    time_on_task_ms = serializers.IntegerField(allow_null=True)
    rewrite_response_id = serializers.IntegerField(allow_null=True, help_text="The response the label's rewrite was stored as; null for none.")
    created_at = serializers.DateTimeField()

    @staticmethod
    def from_label(label: PreferenceLabel) -> dict:
        a_on_left = bool(label.a_on_left)
        c = label.comparison
        winner_id = {"a": c.response_a_id, "b": c.response_b_id}.get(label.winner)
        return {
            "id": label.pk,
            "comparison_id": label.comparison_id,
            "choice": winner_to_side(label.winner, a_on_left=a_on_left),
            "winner_response_id": winner_id,
            "strength": label.strength,
            "criteria": {k: winner_to_side(v, a_on_left=a_on_left) for k, v in label.criteria.items()},
            "rationale": label.rationale,
            "flags": label.flags,
            "time_on_task_ms": label.time_on_task_ms,
            "rewrite_response_id": label.rewrite_id,
            "created_at": label.created_at,
        }


class CampaignSerializer(serializers.Serializer):
    """A campaign the caller works in, with their role there; its API is under /api/v1/campaigns/<slug>/."""

    slug = serializers.SlugField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=["active", "paused", "archived"])
    role = serializers.ChoiceField(choices=["rater", "researcher", "admin"])
    guidelines_version = serializers.IntegerField()
    label_target = serializers.IntegerField()


class GuidelinesSerializer(serializers.Serializer):
    """The rater guidelines: their version (every label records it; 0 while there are none), as written and as rendered."""

    version = serializers.IntegerField()
    markdown = serializers.CharField(allow_blank=True)
    html = serializers.CharField(allow_blank=True, help_text="The Markdown rendered with raw HTML escaped and unsafe links dropped.")


class LabelQuerySerializer(serializers.Serializer):
    next = serializers.BooleanField(required=False, default=False,
                                    help_text="Also lease the next comparison and return it as \"next\" (null when none is left): one call per label.")


_NEXT = LabelQuerySerializer().fields["next"]  # built once: a serializer deep-copies its fields for every instance (0.1 ms a label)


def next_wanted(raw: str | None) -> bool:
    """Return ``?next=`` (``raw``, None when absent) as ``LabelQuerySerializer`` reads it; a ValidationError naming it when it is not a boolean."""
    if raw is None:
        return False
    try:
        return _NEXT.run_validation(raw)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({"next": exc.detail}) from exc


class LabelAndNextSerializer(LabelSerializer):
    """A stored label and, asked for with ?next=1, the rater's next lease."""

    next = NextComparisonSerializer(allow_null=True, required=False, help_text="Only with ?next=1: the next lease, null when none is left.")


class ExportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS, default="trl")
    date_from = serializers.DateTimeField(required=False)
    date_to = serializers.DateTimeField(required=False)
    rater = serializers.CharField(required=False, default="", allow_blank=True, help_text="A username or a pseudonym.")
    tags = serializers.CharField(required=False, default="", allow_blank=True, help_text="Comma-separated tag names.")
    exclude_flagged = serializers.BooleanField(required=False, default=False)
    label_source = serializers.ChoiceField(choices=LABEL_SOURCES, default="all", help_text="human (raters, imports), ai (judges) or all.")

    def validate(self, data):
        if data.get("date_from") and data.get("date_to") and data["date_from"] >= data["date_to"]:
            raise serializers.ValidationError({"date_to": "must be after date_from"})
        return data


class ImportQuerySerializer(serializers.Serializer):
    required_labels = StrictIntegerField(strings=True, required=False, min_value=1, max_value=1000, help_text="Labels each new comparison needs.")
    allow_duplicate = serializers.BooleanField(required=False, default=False, help_text="Import a body identical to an earlier one again.")


class PromptInSerializer(serializers.Serializer):
    """One prompt to import; the same shape as a line of an import file."""

    prompt = serializers.CharField(trim_whitespace=False)
    context = serializers.ListField(child=serializers.JSONField(), required=False)
    responses = serializers.ListField(child=serializers.CharField(trim_whitespace=False), required=False)
    metadata = serializers.DictField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)


# One character that Python's str.strip() keeps (what import_parsing calls "not empty"); ECMA's \S is not the same set.
NOT_ONLY_SPACE = r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


class PromptInSchema(OpenApiSerializerExtension):
    """Document what services.import_parsing accepts, which does the checking (the schema must not promise more)."""

    target_class = PromptInSerializer

    def map_serializer(self, auto_schema, direction):
        from feedback_app.services.import_parsing import ROLES

        text = {"type": "string", "pattern": NOT_ONLY_SPACE, "maxLength": settings.IMPORT_MAX_TEXT_CHARS}
        turn = {"oneOf": [text, {"type": "object", "required": ["role", "content"], "additionalProperties": False,
                                 "properties": {"role": {"type": "string", "enum": list(ROLES)}, "content": text}}]}
        return {
            "type": "object", "required": ["prompt"], "additionalProperties": False,
            "properties": {
                "prompt": text,
                "context": {"type": "array", "items": turn},
                "responses": {"type": "array", "items": text, "uniqueItems": True, "maxItems": settings.IMPORT_MAX_RESPONSES,
                              "anyOf": [{"maxItems": 0}, {"minItems": 2}],
                              "description": "None, or at least 2 different texts: every pair becomes a comparison."},
                "metadata": {"type": "object", "additionalProperties": True},
                "tags": {"type": "array", "items": {"type": "string", "pattern": "[A-Za-z0-9]", "maxLength": 64}},
            },
        }


class ImportBatchSerializer(serializers.Serializer):
    import_batch = serializers.IntegerField()
    counts = serializers.DictField()


class TrainingRunRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["reward_fast", "reward_full", "policy_dpo"], default="reward_fast")


class TrainingRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    trigger = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.DictField()
    metrics = serializers.DictField()
    reward_model_version = serializers.CharField(allow_null=True)
    policy_version = serializers.CharField(allow_null=True)
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    @staticmethod
    def from_run(run) -> dict:
        return {
            "id": run.pk, "kind": run.kind, "trigger": run.trigger, "status": run.status, "progress": run.progress,
            "metrics": run.metrics, "error": run.error, "created_at": run.created_at, "started_at": run.started_at,
            "finished_at": run.finished_at,
            "reward_model_version": run.reward_model_version.name if run.reward_model_version_id else None,
            "policy_version": run.policy_version.name if run.policy_version_id else None,
        }


class ContextTurnSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant", "system"])
    content = StrictCharField(trim_whitespace=False, allow_blank=True, max_length=20000)


class ScoreRequestSerializer(serializers.Serializer):
    prompt = StrictCharField(trim_whitespace=False, min_length=1, max_length=20000)
    context = serializers.ListField(child=ContextTurnSerializer(), required=False, default=list)
    responses = serializers.ListField(child=StrictCharField(trim_whitespace=False, min_length=1, max_length=20000), min_length=1, max_length=64)

    def validate_context(self, value):
        return [dict(turn) for turn in value]


class ScoreSerializer(serializers.Serializer):
    rewards = serializers.ListField(child=serializers.FloatField())
    reward_model_version = serializers.CharField()


class GeneratePromptSerializer(serializers.Serializer):
    prompt = StrictCharField(trim_whitespace=False, min_length=1, max_length=20000)
    context = serializers.ListField(child=ContextTurnSerializer(), required=False, default=list, max_length=64)

    def validate_context(self, value):
        return [dict(turn) for turn in value]


class GenerateRequestSerializer(serializers.Serializer):
    prompts = serializers.ListField(child=GeneratePromptSerializer(), min_length=1, max_length=16)
    seed = StrictIntegerField(required=False, min_value=0, max_value=PG_INTEGER_MAX, help_text="Sampling seed (default 0): the same seed gives the same replies.")
    max_new_tokens = StrictIntegerField(required=False, min_value=1, max_value=settings.GENERATE_MAX_NEW_TOKENS,
                                        help_text="New tokens per reply at most (default GENERATION_MAX_NEW_TOKENS).")
    temperature = StrictFloatField(required=False, min_value=0.0, max_value=2.0, help_text="Sampling temperature; 0 decodes greedily (default GENERATION_TEMPERATURE).")
    mode = serializers.ChoiceField(choices=ServingMode.choices, required=False,
                                   help_text="How the version answers: one sampled reply, or the best of RERANK_SAMPLES by the active reward model "
                                             "(default: the version's serving mode; its rerank samples while no reward model is active).")


class GenerateSerializer(serializers.Serializer):
    policy = serializers.CharField()
    mode = serializers.ChoiceField(choices=ServingMode.choices, help_text="The mode the replies were made in.")
    reward_model = serializers.CharField(allow_null=True, help_text="The reward model that reranked the replies; null when sampled.")
    replies = serializers.ListField(child=serializers.CharField(allow_blank=True))
