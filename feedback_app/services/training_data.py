"""The labels a training run learns from, read incrementally: what a run read before stays with the worker.

A comparison's labels no longer change once it completed (over-collection is refused; an undo
reopens it first), and those completed before ``QualityTallied.through`` are what the quality
tallies hold (``services.quality_tally``), with the gold pairs' labels made before it (gold pairs
stay open; their labels are kept as they are made). A worker keeps their labels, with the texts
training needs, in its memory and in a file per campaign under ``MODEL_STORE/training-data/``; a
run adds from the database only the comparisons completed since it last read, and reads the rest
(open comparisons, the last hour's) live. So a refit's reading of the database, and of the file,
follows the new labels, not the history.

The file is a header line and then one line per reading (a *segment*: the comparisons completed
between its ``since`` and its ``through``), appended under a lock, so writing follows the new
labels too. A worker that starts (or another machine's) reads the file once, then the segments
other workers append; a segment that does not continue the chain it read (two workers appended
the same span) is skipped, and a line cut short by a crash is ignored and cut off before the next
append. The file and the memory are valid for one generation of the tallies: a label deleted from
a comparison they hold (an admin's delete, a cascade), or such a comparison made gold, rebuilds
them under a new generation, and the next run reads everything once more and writes the file anew.
An admin's answers and exclusions are read live, so a review needs no rebuild.
"""

from __future__ import annotations

import bisect
import fcntl
import itertools
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from pathlib import Path

from django.conf import settings
from django.db.models import Max, Min, Q

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PreferenceLabel, QualityTallied
from feedback_app.selectors.label_tally import MARK_ID

logger = logging.getLogger(__name__)

FORMAT = 2  # the file's layout; a file of another is written anew from the database


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
    order: tuple[int, int] = field(init=False, repr=False, compare=False)  # (comparison id, id): the order training reads

    def __post_init__(self) -> None:
        self.order = (self.comparison.pk, self.pk)

    @property
    def comparison_id(self) -> int:
        return self.comparison.pk


ORDER = attrgetter("order")

# A comparison as the file keeps it: [id, prompt id, prompt, context, reply a, reply b, [[label id, rater id, judge version id,
# winner, strength, rewrite id, rewrite], …]]
_FIELDS = ("comparison_id", "comparison__prompt_id", "comparison__prompt__text", "comparison__prompt__context", "comparison__response_a__text",
           "comparison__response_b__text", "pk", "rater_id", "judge_version_id", "winner", "strength", "rewrite_id", "rewrite__text")


def labels_for_training(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, exclude_prompt_ids: list[int] | None = None) -> tuple[list[TrainingLabel], dict]:
    """Return the campaign's labels up to now, ordered by comparison then id, and the range they cover.

    The range is fixed first, so labels that arrive during the fit are left for the next one (the
    tallies' mark is read before it: every kept label was stored before the close that kept it).
    Each campaign's reward-model and policy lines learn from its own labels only; excluded
    comparisons and ``exclude_prompt_ids`` (held-out prompts) are left out.
    """
    mark = QualityTallied.objects.filter(pk=MARK_ID).values_list("generation", "through").first()
    campaign_labels = PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id)
    bounds = campaign_labels.aggregate(first=Min("id"), last=Max("id"))
    last = bounds["last"] or 0
    left_out = sorted(Comparison.objects.filter(excluded=True, prompt__campaign_id=campaign_id).values_list("pk", flat=True))
    held_out = set(exclude_prompt_ids or ())
    kept = _kept(campaign_id=campaign_id, generation=str(mark[0]), through=mark[1]) if mark else []
    live = campaign_labels.filter(pk__lte=last)
    if mark:
        # the comparisons first (the backlog and the last hour's, through comparison_completed_at), then their labels;
        # and the gold pairs' labels made since (gold pairs stay open: their labels are kept as they are made)
        open_ids = list(Comparison.objects.filter(Q(completed_at__isnull=True) | Q(completed_at__gte=mark[1]), is_gold=False,
                                                  prompt__campaign_id=campaign_id).values_list("pk", flat=True))
        live = live.filter(Q(comparison_id__in=open_ids) | Q(comparison__is_gold=True, created_at__gte=mark[1]))
    left_out_set = set(left_out)
    labels = _without(kept, left_out) + [label for record in _records(live) for label in _labels(record)
                                         if label.comparison.pk not in left_out_set]
    if held_out:
        labels = [label for label in labels if label.comparison.prompt_id not in held_out]
    labels.sort(key=ORDER)  # the kept labels are in order already: this merges the live ones in
    return labels, {"first_label_id": bounds["first"], "last_label_id": bounds["last"], "n_labels": len(labels)}


def _without(labels: list[TrainingLabel], comparison_ids: list[int]) -> list[TrainingLabel]:
    """Return a copy of ``labels`` (in order) without the labels of ``comparison_ids`` (ascending): slices, not a pass over every label."""
    parts, start = [], 0
    for cid in comparison_ids:
        first = bisect.bisect_left(labels, (cid, 0), lo=start, key=ORDER)
        end = bisect.bisect_left(labels, (cid + 1, 0), lo=first, key=ORDER)
        if first < end:
            parts.append(labels[start:first])
            start = end
    if not parts:
        return labels[:]
    parts.append(labels[start:])
    return list(itertools.chain.from_iterable(parts))


def _records(labels) -> list[list]:
    """Return the labels' comparisons as the file keeps them, in comparison order."""
    records: dict[int, list] = {}
    for row in labels.order_by("comparison_id", "id").values_list(*_FIELDS).iterator(chunk_size=5000):
        cid, prompt_id, prompt, context, a, b, *label = row
        records.setdefault(cid, [cid, prompt_id, prompt, context, a, b, []])[6].append(label)
    return list(records.values())


def _labels(record: list) -> list[TrainingLabel]:
    cid, prompt_id, prompt, context, a, b, labels = record
    comparison = ComparisonTexts(pk=cid, prompt_id=prompt_id, prompt=PromptText(prompt, context), response_a=Text(a), response_b=Text(b))
    return [TrainingLabel(pk=pk, comparison=comparison, rater_id=rater_id, judge_version_id=judge_version_id, winner=winner, strength=strength,
                          rewrite_id=rewrite_id, rewrite=Text(rewrite) if rewrite_id is not None else None)
            for pk, rater_id, judge_version_id, winner, strength, rewrite_id, rewrite in labels]


def training_data_path(*, campaign_id: int) -> Path:
    return Path(settings.MODEL_STORE) / "training-data" / f"campaign-{campaign_id}.jsonl"


@dataclass(slots=True)
class _Kept:
    """A campaign's kept labels as one worker holds them: through which completion time, and how far into the file it read."""

    generation: str
    through: datetime | None = None
    labels: list[TrainingLabel] = field(default_factory=list)  # in order
    inode: int | None = None  # the file read, and how far: a file written anew by another worker is not read on from an offset
    offset: int = 0

    def add(self, records: list[list], *, through: datetime) -> None:
        new = [label for record in records for label in _labels(record)]
        if new:
            self.labels += new
            self.labels.sort(key=ORDER)  # two runs in order: a merge
        self.through = through


_held: dict[Path, _Kept] = {}
_lock = threading.Lock()


def forget() -> None:
    """Drop what this process holds (as a worker that starts would); the file stays."""
    with _lock:
        _held.clear()


def _kept(*, campaign_id: int, generation: str, through: datetime) -> list[TrainingLabel]:
    """Return the kept labels (comparisons completed before ``through``), in order, reading only what this worker lacks and keeping it.

    First what this worker holds, then the segments the file has beyond it, then the database for
    the rest, which becomes a segment of the file.
    """
    path = training_data_path(campaign_id=campaign_id)
    with _lock:
        kept = _held.get(path)
        if kept is None or kept.generation != generation or (kept.through is not None and kept.through > through):
            kept = _held[path] = _Kept(generation=generation)
        if kept.through != through:
            file_usable = _read_segments(path, kept, through=through)
            if kept.through != through:
                since = kept.through
                labels = PreferenceLabel.objects.filter(comparison__prompt__campaign_id=campaign_id)
                completed = labels.filter(comparison__completed_at__lt=through, comparison__is_gold=False)
                gold = labels.filter(comparison__is_gold=True, created_at__lt=through)
                if since is not None:
                    completed = completed.filter(comparison__completed_at__gte=since)
                    gold = gold.filter(created_at__gte=since)
                records = _records(completed) + _records(gold)  # a gold pair's labels may come in several records
                kept.add(records, through=through)
                segment = {"since": since.isoformat() if since else None, "through": through.isoformat(), "comparisons": records}
                if file_usable and since is not None:
                    _append(path, kept, segment)
                else:
                    _write(path, kept, segment)
        return kept.labels


def _read_segments(path: Path, kept: _Kept, *, through: datetime) -> bool:
    """Add the file's segments that continue ``kept`` up to ``through``; return whether the file is this generation's (else it is written anew)."""
    try:
        with path.open("rb") as file:
            inode = os.fstat(file.fileno()).st_ino
            if kept.inode != inode:
                if kept.through is not None:
                    return True  # written anew since this worker read it: read on from the database, append there
                header = json.loads(file.readline())
                if header.get("format") != FORMAT or header.get("generation") != kept.generation:
                    return False
                kept.inode, kept.offset = inode, file.tell()
            file.seek(kept.offset)
            for line in file:
                if not line.endswith(b"\n"):
                    break  # being appended, or cut short by a crash
                segment = json.loads(line)
                end = datetime.fromisoformat(segment["through"])
                if end > through:
                    break  # read past a newer mark than this run's: left for the next run
                kept.offset += len(line)
                if segment["since"] == (kept.through.isoformat() if kept.through else None):
                    kept.add(segment["comparisons"], through=end)
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("training data %s unreadable (%s); reading the campaign's labels again", path, exc)
        kept.through, kept.labels, kept.inode, kept.offset = None, [], None, 0  # what the bad file gave is dropped with it
        return False
    return True


def _line(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def _write(path: Path, kept: _Kept, segment: dict) -> None:
    """Write the file anew, whole or not at all: the header and the first segment (two workers may write it at once; each writes a complete one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    header = _line({"format": FORMAT, "generation": kept.generation})
    body = _line(segment) if segment["since"] is None else b""  # a segment that does not start the chain is left to this worker's memory
    part.write_bytes(header + body)
    os.replace(part, path)
    kept.inode, kept.offset = os.stat(path).st_ino, len(header) + len(body)
    path.with_suffix(".json").unlink(missing_ok=True)  # the first format's file


def _append(path: Path, kept: _Kept, segment: dict) -> None:
    """Append a segment under the file's lock, first cutting off a line a crash left unfinished."""
    data = _line(segment)
    try:
        file = path.open("r+b")
    except FileNotFoundError:
        return  # removed since this worker read it: the next worker to start writes it anew
    with file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            if os.fstat(file.fileno()).st_ino != kept.inode:
                return  # written anew since this worker read it: this segment stays in this worker's memory
            end = file.seek(0, os.SEEK_END)
            keep = _complete_end(file, end)
            if keep != end:
                file.truncate(keep)
            file.seek(keep)
            file.write(data)
            file.flush()
            if kept.offset == keep:
                kept.offset = keep + len(data)  # its own segment: not to be read back
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _complete_end(file, end: int) -> int:
    """Return where the file's last complete line ends."""
    position = end
    while position > 0:
        start = max(0, position - 65536)
        file.seek(start)
        chunk = file.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0
