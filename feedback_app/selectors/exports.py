"""What an export reads: the labels a filter selects, and each label as a row.

``ExportFilters.from_query`` and ``export_filename`` are the one place the admin page, the API
and the command build their filters and file names; ``services.exports`` writes the formats.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from difflib import SequenceMatcher

from django.contrib.auth import get_user_model
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.text import slugify

from feedback_app.models import DEFAULT_CAMPAIGN_ID, PreferenceLabel, Tag
from feedback_app.models.labels import winner_to_side

FORMATS = ("trl", "raw", "csv", "parquet", "sft")
CONTENT_TYPES = {
    "trl": "application/x-ndjson",
    "sft": "application/x-ndjson",
    "raw": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}
EXTENSIONS = {"trl": "jsonl", "raw": "jsonl", "csv": "csv", "parquet": "parquet", "sft": "jsonl"}
RAW_COLUMNS = [
    "label_id", "comparison_id", "prompt_id", "rater", "winner", "choice", "displayed_order", "strength", "criteria",
    "rationale", "flags", "edited_text", "time_on_task_ms", "labelled_at", "leased_at", "prompt", "context", "tags",
    "response_a_id", "response_a", "response_a_origin", "response_b_id", "response_b", "response_b_origin",
    "comparison_kind", "policy_version", "reward_model_version", "selection_strategy", "selection_score", "source",
    "is_gold", "gold_winner", "gold_correct", "rater_trust", "comparison_labels", "agreement", "adjudicated_winner", "excluded",
    "truncated_a", "truncated_b",
    # added with rewrites, at the end: consumers read columns by name, and old ones keep their places
    "rewrite_id", "rewrite", "rewrite_from", "rewrite_diff_chars",
    # added with AI feedback: who gave the label (human: a rater or an import; ai: a judge, named with its version)
    "label_source", "judge", "judge_version",
    # an arena comparison's serving mode (sample | rerank) of its policy_version side; null for others
    "policy_mode",
    # the rater guidelines' version the rater had (0: none yet); null for AI and imported labels
    "guidelines_version",
]
LABEL_SOURCES = ("all", "human", "ai")
CHUNK = 2000
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
EXACT_DIFF_CELLS = 1_000_000  # above this product of lengths difflib's quadratic search takes seconds; its heuristic is used


@dataclass(frozen=True)
class ExportFilters:
    """Which labels to export; every field narrows the set."""

    date_from: datetime | None = None
    date_to: datetime | None = None
    rater: str = ""  # a username or a pseudonym
    tags: tuple[str, ...] = field(default_factory=tuple)  # prompts with any of these tags
    exclude_flagged: bool = False
    include_imported: bool = True
    label_source: str = "all"  # one of LABEL_SOURCES: people's labels (raters' and imported), AI labels, or both
    campaign_id: int = DEFAULT_CAMPAIGN_ID  # an export holds one campaign's labels

    def __post_init__(self) -> None:
        if self.label_source not in LABEL_SOURCES:
            raise ValueError(f"label source must be one of {', '.join(LABEL_SOURCES)}, got {self.label_source!r}")

    @classmethod
    def from_query(
        cls, *, date_from: datetime | None = None, date_to: datetime | None = None, rater: str = "",
        tags: str | Sequence[str] = (), exclude_flagged: bool = False, label_source: str = "all", campaign_id: int = DEFAULT_CAMPAIGN_ID,
    ) -> ExportFilters:
        """Return the filters of a form, query or command line: ``tags`` comma-separated or a sequence, blanks dropped."""
        names = tags.split(",") if isinstance(tags, str) else tags
        return cls(  # a tag as an import stores it: "Billing Issues" is billing-issues
            date_from=date_from, date_to=date_to, rater=rater.strip(),
            tags=tuple(dict.fromkeys(slugify(t) or t.strip() for t in names if t.strip())), exclude_flagged=exclude_flagged, label_source=label_source or "all",
            campaign_id=campaign_id,
        )


def export_filter_problems(*, filters: ExportFilters) -> dict[str, str]:
    """Return what in ``filters`` names nothing the studio holds (a mistyped tag or rater would export nothing, silently),
    as field → message; empty when all is known."""
    problems = {}
    known = set(Tag.objects.filter(name__in=filters.tags).values_list("name", flat=True))
    unknown = [t for t in filters.tags if t not in known]
    if unknown:
        problems["tags"] = f"no tag {', '.join(repr(t) for t in unknown)} in the studio"
    if filters.rater and not get_user_model().objects.filter(Q(username=filters.rater) | Q(profile__pseudonym=filters.rater)).exists():
        problems["rater"] = f"no rater {filters.rater!r} (a username or a pseudonym)"
    return problems


def export_filename(*, fmt: str, now: datetime) -> str:
    """Return the download name of an export in ``fmt`` made at ``now``."""
    return f"preferences-{fmt}-{now:%Y%m%d-%H%M%S}.{EXTENSIONS[fmt]}"


def labels_for_export(*, filters: ExportFilters) -> QuerySet[PreferenceLabel]:
    """Return the labels that ``filters`` select, with what an export row needs joined in."""
    labels = PreferenceLabel.objects.filter(campaign_id=filters.campaign_id)
    if filters.date_from:
        labels = labels.filter(created_at__gte=filters.date_from)
    if filters.date_to:
        labels = labels.filter(created_at__lt=filters.date_to)
    if filters.rater:
        labels = labels.filter(Q(rater__username=filters.rater) | Q(rater__profile__pseudonym=filters.rater))
    if filters.tags:
        labels = labels.filter(comparison__prompt__tags__name__in=filters.tags).distinct()
    if filters.exclude_flagged:
        labels = labels.filter(flags=[])
    if not filters.include_imported:
        labels = labels.filter(Q(rater__isnull=False) | Q(judge_version__isnull=False))
    if filters.label_source != "all":
        labels = labels.filter(judge_version__isnull=filters.label_source == "human")
    same = PreferenceLabel.objects.filter(comparison=OuterRef("comparison"), winner=OuterRef("winner"), rater__isnull=False)
    every = PreferenceLabel.objects.filter(comparison=OuterRef("comparison"), rater__isnull=False)
    labels = labels.annotate(n_same=_count(same), n_rater_labels=_count(every))
    return labels.select_related(
        "rater__profile", "assignment", "comparison__prompt", "rewrite", "comparison__response_a__policy_version",
        "comparison__response_b__policy_version", "comparison__policy_version", "comparison__reward_model_version",
        "import_batch", "judge_version__judge",
    ).prefetch_related("comparison__prompt__tags")


def _count(queryset) -> Coalesce:
    return Coalesce(Subquery(queryset.order_by().values("comparison").annotate(n=Count("id")).values("n"), output_field=IntegerField()), Value(0))


def rewrite_diff_chars(original: str, rewrite: str) -> int:
    """Return how many characters a rewrite inserted plus deleted against the reply it started from ("" from scratch).

    difflib aligns the words (the common start and end set aside first), then the characters
    within each changed run; a change too large for the exact search is measured by difflib's
    junk heuristic, which may count a little more.
    """
    head = len(os.path.commonprefix([original, rewrite]))
    tail = len(os.path.commonprefix([original[head:][::-1], rewrite[head:][::-1]]))
    a, b = _TOKEN.findall(original[head:len(original) - tail]), _TOKEN.findall(rewrite[head:len(rewrite) - tail])
    total = 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=len(a) * len(b) > EXACT_DIFF_CELLS).get_opcodes():
        if tag == "equal":
            continue
        x, y = "".join(a[i1:i2]), "".join(b[j1:j2])
        same = 0
        if tag == "replace" and len(x) * len(y) <= EXACT_DIFF_CELLS:
            same = sum(block.size for block in SequenceMatcher(None, x, y, autojunk=False).get_matching_blocks())
        total += len(x) + len(y) - 2 * same
    return total


def _rewrite_columns(label: PreferenceLabel) -> dict:
    rewrite = label.rewrite if label.rewrite_id else None
    if rewrite is None:
        return {"rewrite_id": None, "rewrite": None, "rewrite_from": None, "rewrite_diff_chars": None}
    comparison = label.comparison
    start = {comparison.response_a_id: "a", comparison.response_b_id: "b"}.get(rewrite.edited_from_id)
    original = {"a": comparison.response_a, "b": comparison.response_b}[start].text if start else ""
    return {"rewrite_id": rewrite.pk, "rewrite": rewrite.text, "rewrite_from": start, "rewrite_diff_chars": rewrite_diff_chars(original, rewrite.text)}


def raw_row(label: PreferenceLabel, *, trust: dict[int, float] | None = None) -> dict:
    """Return one label as an export row (``label`` annotated as by ``labels_for_export``)."""
    comparison = label.comparison
    prompt = comparison.prompt
    a_on_left = label.a_on_left
    return {
        "label_id": label.pk,
        "comparison_id": comparison.pk,
        "prompt_id": prompt.pk,
        "rater": _rater_name(label),
        "winner": label.winner,
        "choice": winner_to_side(label.winner, a_on_left=a_on_left) if a_on_left is not None else None,
        "displayed_order": None if a_on_left is None else ("a_left" if a_on_left else "b_left"),
        "strength": label.strength,
        "criteria": label.criteria,
        "rationale": label.rationale,
        "flags": label.flags,
        "edited_text": label.edited_text,
        "time_on_task_ms": label.time_on_task_ms,
        "labelled_at": label.created_at.isoformat(),
        "leased_at": label.assignment.leased_at.isoformat() if label.assignment_id else None,
        "prompt": prompt.text,
        "context": prompt.context,
        "tags": [t.name for t in prompt.tags.all()],
        "response_a_id": comparison.response_a_id,
        "response_a": comparison.response_a.text,
        "response_a_origin": comparison.response_a.origin,
        "response_b_id": comparison.response_b_id,
        "response_b": comparison.response_b.text,
        "response_b_origin": comparison.response_b.origin,
        "comparison_kind": comparison.kind,
        "policy_version": comparison.policy_version.name if comparison.policy_version_id else None,
        "reward_model_version": comparison.reward_model_version.name if comparison.reward_model_version_id else None,
        "selection_strategy": comparison.selection_strategy or None,
        "selection_score": comparison.selection_score,
        "source": prompt.source,
        "is_gold": comparison.is_gold,
        "gold_winner": comparison.gold_winner or None,
        "gold_correct": (label.winner == comparison.gold_winner) if comparison.is_gold and comparison.gold_winner else None,
        "rater_trust": (trust or {}).get(label.rater_id) if label.rater_id else None,
        "comparison_labels": getattr(label, "n_rater_labels", None),
        "agreement": round(label.n_same / label.n_rater_labels, 4) if getattr(label, "n_rater_labels", 0) and label.rater_id else None,
        "adjudicated_winner": comparison.adjudicated_winner or None,
        "excluded": comparison.excluded,
        "truncated_a": comparison.response_a.truncated,
        "truncated_b": comparison.response_b.truncated,
        **_rewrite_columns(label),
        "label_source": label.label_source,
        "judge": label.judge_version.judge.name if label.judge_version_id else None,
        "judge_version": label.judge_version.version if label.judge_version_id else None,
        "policy_mode": comparison.policy_mode or None,
        "guidelines_version": label.guidelines_version,
    }


def _rater_name(label: PreferenceLabel) -> str:
    if label.judge_version_id:
        return label.judge_version.label
    if label.rater_id:
        return label.rater.profile.pseudonym if hasattr(label.rater, "profile") else f"u-{label.rater_id}"
    return f"import-{label.import_batch_id}"
