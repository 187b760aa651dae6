"""The labels a training run learns from, read incrementally: what a run read before is kept on the worker's disk.

A comparison's labels no longer change once it completed (over-collection is refused; an undo
reopens it first), and those completed before ``QualityTallied.through`` are what the quality
tallies hold (``services.quality_tally``), with the gold pairs' labels made before it (gold pairs
stay open; their labels are kept as they are made). A worker keeps their labels, with the texts training
needs, in a file per campaign under ``MODEL_STORE/training-data/``; a run reads that file, adds
from the database only the comparisons completed since the file was written, and reads the rest
(open comparisons, the last hour's) live. So a refit's reading of the database follows the new
labels, not the history.

The file is valid for one generation of the tallies: a label deleted from a comparison they hold
(an admin's delete, a cascade), or such a comparison made gold, rebuilds them under a new
generation, and the next run reads everything once more. An admin's answers and exclusions are
read live, so a review needs no rebuild. A worker without the file (another machine, a cleaned
disk) reads everything once and writes it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Max, Min, Q

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PreferenceLabel, QualityTallied
from feedback_app.selectors.label_tally import MARK_ID

logger = logging.getLogger(__name__)

FORMAT = 1  # the file's layout; a file of another is read again from the database


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class PromptText:
    text: str
    context: list


@dataclass(slots=True)
class ComparisonTexts:
    pk: int
    prompt_id: int
    prompt: PromptText
    response_a: Text
    response_b: Text


@dataclass(slots=True)
class TrainingLabel:
    """A label as training reads it: what ``training_bridge.preference_pairs`` uses of a ``PreferenceLabel``, texts included."""

    pk: int
    comparison: ComparisonTexts
    rater_id: int | None
    judge_version_id: int | None
    winner: str
    strength: int
    rewrite_id: int | None
    rewrite: Text | None

    @property
    def comparison_id(self) -> int:
        return self.comparison.pk


# A comparison as the file keeps it: [id, prompt id, prompt, context, reply a, reply b, [[label id, rater id, judge version id,
# winner, strength, rewrite id, rewrite], …]]
_FIELDS = ("comparison_id", "comparison__prompt_id", "comparison__prompt__text", "comparison__prompt__context", "comparison__response_a__text",
           "comparison__response_b__text", "pk", "rater_id", "judge_version_id", "winner", "strength", "rewrite_id", "rewrite__text")


def labels_for_training(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, exclude_prompt_ids: list[int] | None = None) -> tuple[list[TrainingLabel], dict]:
    """Return the campaign's labels up to now, ordered by comparison then id, and the range they cover.

    The range is fixed first, so labels that arrive during the fit are left for the next one. Each
    campaign's reward-model and policy lines learn from its own labels only; excluded comparisons
    and ``exclude_prompt_ids`` (held-out prompts) are left out.
    """
    campaign_labels = PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id)
    bounds = campaign_labels.aggregate(first=Min("id"), last=Max("id"))
    last = bounds["last"] or 0
    left_out = set(Comparison.objects.filter(excluded=True, prompt__campaign_id=campaign_id).values_list("pk", flat=True))
    held_out = set(exclude_prompt_ids or ())
    mark = QualityTallied.objects.filter(pk=MARK_ID).values_list("generation", "through").first()
    kept = _kept(campaign_id=campaign_id, generation=str(mark[0]), through=mark[1]) if mark else []
    live = campaign_labels.filter(pk__lte=last)
    if mark:
        # the comparisons first (the backlog and the last hour's, through comparison_completed_at), then their labels;
        # and the gold pairs' labels made since (gold pairs stay open: their labels are kept as they are made)
        open_ids = list(Comparison.objects.filter(Q(completed_at__isnull=True) | Q(completed_at__gte=mark[1]), is_gold=False,
                                                  prompt__campaign_id=campaign_id).values_list("pk", flat=True))
        live = live.filter(Q(comparison_id__in=open_ids) | Q(comparison__is_gold=True, created_at__gte=mark[1]))
    labels = [label for record in kept + _records(live) for label in _labels(record, last=last)
              if label.comparison.pk not in left_out and label.comparison.prompt_id not in held_out]
    labels.sort(key=lambda label: (label.comparison.pk, label.pk))
    return labels, {"first_label_id": bounds["first"], "last_label_id": bounds["last"], "n_labels": len(labels)}


def _records(labels) -> list[list]:
    """Return the labels' comparisons as the file keeps them, in comparison order."""
    records: dict[int, list] = {}
    for row in labels.order_by("comparison_id", "id").values_list(*_FIELDS).iterator(chunk_size=5000):
        cid, prompt_id, prompt, context, a, b, *label = row
        records.setdefault(cid, [cid, prompt_id, prompt, context, a, b, []])[6].append(label)
    return list(records.values())


def _labels(record: list, *, last: int) -> list[TrainingLabel]:
    cid, prompt_id, prompt, context, a, b, labels = record
    comparison = ComparisonTexts(pk=cid, prompt_id=prompt_id, prompt=PromptText(prompt, context), response_a=Text(a), response_b=Text(b))
    return [TrainingLabel(pk=pk, comparison=comparison, rater_id=rater_id, judge_version_id=judge_version_id, winner=winner, strength=strength,
                          rewrite_id=rewrite_id, rewrite=Text(rewrite) if rewrite_id is not None else None)
            for pk, rater_id, judge_version_id, winner, strength, rewrite_id, rewrite in labels if pk <= last]


def training_data_path(*, campaign_id: int) -> Path:
    return Path(settings.MODEL_STORE) / "training-data" / f"campaign-{campaign_id}.json"


def _kept(*, campaign_id: int, generation: str, through: datetime) -> list[list]:
    """Return the kept comparisons (completed before ``through``), reading from the database only those the file lacks, and keep them."""
    path = training_data_path(campaign_id=campaign_id)
    kept = {"format": FORMAT, "generation": generation, "through": None, "comparisons": []}
    try:
        on_disk = json.loads(path.read_text())
    except FileNotFoundError:
        on_disk = None
    except (OSError, ValueError) as exc:
        logger.warning("training data %s unreadable (%s); reading the campaign's labels again", path, exc)
        on_disk = None
    if on_disk and on_disk.get("format") == FORMAT and on_disk.get("generation") == generation and on_disk.get("through") \
            and datetime.fromisoformat(on_disk["through"]) <= through:
        kept = on_disk
    since = datetime.fromisoformat(kept["through"]) if kept["through"] else None
    if since is not None and since == through:
        return kept["comparisons"]
    labels = PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id)
    completed = labels.filter(comparison__completed_at__lt=through, comparison__is_gold=False)
    gold = labels.filter(comparison__is_gold=True, created_at__lt=through)
    if since is not None:
        completed = completed.filter(comparison__completed_at__gte=since)
        gold = gold.filter(created_at__gte=since)
    kept["comparisons"] += _records(completed) + _records(gold)  # a gold pair's labels may come in several records
    kept["through"] = through.isoformat()
    _write(path, kept)
    return kept["comparisons"]


def _write(path: Path, data: dict) -> None:
    """Write the file whole or not at all (two workers may write it at once; each writes a complete one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(part, path)
