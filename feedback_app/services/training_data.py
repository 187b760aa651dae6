"""The labels a training run learns from, read incrementally: what a run read before stays with the worker.

A comparison's labels no longer change once it completed (over-collection is refused; an undo
reopens it first), and those completed before ``QualityTallied.through`` are what the quality
tallies hold (``services.quality_tally``), with the gold pairs' labels made before it (gold pairs
stay open; their labels are kept as they are made). A worker keeps their labels, with the texts
training needs, in its memory and in a file per campaign under ``MODEL_STORE/training-data/``; a
run adds from the database only the comparisons completed since it last read, and reads the rest
(open comparisons, the last minute's) live. So a refit's reading of the database, and of the file,
follows the new labels, not the history.

A rater's undo reopens a comparison that may be kept: an open comparison is read live, and its
kept labels are left out; when it completes again, the segment that holds it replaces them. A
gold pair's label undone after it was kept is left out when the number of the pairs' labels in the
database falls short of the kept ones.

The file is a header line and then one line per reading (a *segment*: the comparisons completed
between its ``since`` and its ``through``, and the gold pairs' labels made then), appended under a
lock, so writing follows the new labels too. A worker that starts (or another machine's) reads the file once, then the segments
other workers append; a segment that does not continue the chain it read (two workers appended
the same span) is skipped, and a line cut short by a crash is ignored and cut off before the next
append. The file and the memory are valid for one generation of the tallies: a label deleted from
a comparison they hold (an admin's delete, a cascade), or such a comparison made gold, rebuilds
them under a new generation, and the next run reads everything once more and writes the file anew.
An admin's answers and exclusions are read live, so a review needs no rebuild.
"""

from __future__ import annotations

import bisect
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
from django.db.models import Q

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PreferenceLabel, QualityTallied
from feedback_app.selectors.campaigns import comparisons_in_campaign
from feedback_app.selectors.label_tally import MARK_ID
from feedback_app.selectors.quality import untallied_comparisons
from feedback_app.services.training_data_file import FORMAT, append as _append, write as _write

logger = logging.getLogger(__name__)



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


def labels_for_training(
    *, campaign_id: int = DEFAULT_CAMPAIGN_ID, exclude_prompt_ids: list[int] | None = None, through_label_id: int | None = None,
) -> tuple[list[TrainingLabel], dict]:
    """Return the campaign's labels up to now (or up to label ``through_label_id``), ordered by comparison then id, and the
    range they cover.

    The range is fixed first, so labels that arrive during the fit are left for the next one (the
    tallies' mark is read before it: every kept label was stored before the close that kept it).
    Each campaign's reward-model and policy lines learn from its own labels only; excluded
    comparisons and ``exclude_prompt_ids`` (held-out prompts) are left out.
    """
    parts = training_parts(campaign_id=campaign_id, through_label_id=through_label_id)
    if parts is None:
        return [], {"first_label_id": None, "last_label_id": None, "n_labels": 0}
    kept = parts.kept_labels(parts.labels)
    if parts.bounded:  # a bounded read (a fast refit behind its labels): a pass over the kept ones
        kept = [label for label in kept if label.pk <= parts.last]
    left_out_set = set(parts.left_out)
    labels = _merged(_without(kept, sorted(left_out_set.union(parts.reopened))),
                     [label for label in parts.live if label.comparison.pk not in left_out_set])
    held_out = set(exclude_prompt_ids or ())
    if held_out:
        labels = [label for label in labels if label.comparison.prompt_id not in held_out]
    return labels, {"first_label_id": parts.first, "last_label_id": parts.last, "n_labels": len(labels)}


@dataclass
class TrainingParts:
    """What a training read is made of, before it is put together: the kept labels (``labels``, as ``kept`` held them when read,
    and how many of its ``changed`` comparisons they hold; ``kept`` is None before the first tallies), the comparisons left out
    of them (``left_out``: excluded; ``reopened``: by an undo since they were kept, read live), the gold pairs, the live labels
    (in order) and the range."""

    kept: _Kept | None
    labels: list[TrainingLabel]
    changed: int
    last: int
    bounded: bool
    first: int | None
    left_out: list[int]
    reopened: list[int]
    gold_ids: list[int]
    live: list[TrainingLabel]
    through: datetime | None

    def kept_labels(self, labels: list[TrainingLabel]) -> list[TrainingLabel]:
        """Return kept ``labels`` (in order) without the gold pairs' labels undone since they were kept."""
        if self.kept is None:
            return labels
        return _gold_undone_without(labels, gold_ids=self.gold_ids, through=self.through)


def training_parts(*, campaign_id: int, through_label_id: int | None = None) -> TrainingParts | None:
    """Return the parts of a read of the campaign's labels up to now (or up to label ``through_label_id``), or None without labels."""
    mark = QualityTallied.objects.filter(pk=MARK_ID).values_list("generation", "through").first()
    campaign_labels = PreferenceLabel.objects.filter(campaign_id=campaign_id)
    if through_label_id is not None:
        campaign_labels = campaign_labels.filter(pk__lte=through_label_id)
    # the newest first, through the label index backwards (the campaign's labels are the newest in a studio of one)
    last = campaign_labels.order_by("-id").values_list("id", flat=True).first()
    if last is None:
        return None
    left_out = sorted(comparisons_in_campaign(Comparison.objects.filter(excluded=True), campaign_id=campaign_id).values_list("pk", flat=True))
    if mark is None:  # no tallies yet: everything is live
        kept, labels, changed, kept_first, reopened, gold_ids, live = None, [], 0, None, [], [], campaign_labels.filter(pk__lte=last)
    else:
        kept, labels, changed, kept_first = _kept(campaign_id=campaign_id, generation=str(mark[0]), through=mark[1])
        # what the tallies leave out (the backlog and the last minute's), and the gold pairs' labels made since (gold pairs stay open:
        # their labels are kept as they are made)
        open_ids = list(untallied_comparisons(campaign_id=campaign_id, through=mark[1]).values_list("pk", flat=True))
        reopened = [cid for cid in open_ids if cid in kept.comparisons]  # reopened by an undo since they were kept: read live
        gold_ids = _gold_ids(campaign_id)
        if through_label_id is not None and kept_first is not None and kept_first > last:
            kept_first = None  # the smallest kept id is the smallest up to the bound, or none is
        live = PreferenceLabel.objects.filter(Q(comparison_id__in=open_ids) | Q(comparison_id__in=gold_ids, created_at__gte=mark[1]),
                                              pk__lte=last)
    live_labels = sorted((label for record in _records(live) for label in _labels(record)), key=ORDER)
    first = min([kept_first] * (kept_first is not None) + [label.pk for label in live_labels], default=None)  # before the exclusions: the campaign's range
    return TrainingParts(kept=kept, labels=labels, changed=changed, last=last, bounded=through_label_id is not None, first=first, left_out=left_out, reopened=reopened,
                         gold_ids=gold_ids, live=live_labels, through=mark[1] if mark else None)


def _gold_ids(campaign_id: int) -> list[int]:
    return sorted(comparisons_in_campaign(Comparison.objects.filter(is_gold=True), campaign_id=campaign_id).values_list("pk", flat=True))


def _gold_undone_without(labels: list[TrainingLabel], *, gold_ids: list[int], through: datetime) -> list[TrainingLabel]:
    """Return ``labels`` (kept) without the gold pairs' labels undone since they were kept: when the database holds fewer of the
    pairs' labels made before ``through`` than were kept, the kept ones it lacks are left out."""
    spans = [(first := bisect.bisect_left(labels, (cid, 0), key=ORDER), bisect.bisect_left(labels, (cid + 1, 0), lo=first, key=ORDER))
             for cid in gold_ids]
    kept = sum(end - first for first, end in spans)
    stored = PreferenceLabel.objects.filter(comparison_id__in=gold_ids, created_at__lt=through)
    if not kept or stored.count() == kept:  # no label is made before the mark after the mark was read: a count tells
        return labels
    present = set(stored.values_list("pk", flat=True))
    gone = {label.pk for first, end in spans for label in labels[first:end] if label.pk not in present}
    return [label for label in labels if label.pk not in gone]


# The kept labels are many and in order, what a run adds is few: both helpers below cost a search per change and copy slices
# of the rest (pointers, in C), not a Python step per kept label.

def _without(labels: list[TrainingLabel], comparison_ids: list[int]) -> list[TrainingLabel]:
    """Return a copy of ``labels`` (in order) without the labels of ``comparison_ids`` (ascending)."""
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


def _merged(labels: list[TrainingLabel], new: list[TrainingLabel]) -> list[TrainingLabel]:
    """Return ``labels`` with ``new`` merged in, both in order (and so the result)."""
    if not new:
        return labels
    if not labels or labels[-1].order < new[0].order:
        return labels + new
    if len(new) * 16 > len(labels):  # many: a sort of both (two runs in order, merged in C)
        return sorted(labels + new, key=ORDER)
    merged, start = [], 0
    for label in new:
        at = bisect.bisect_left(labels, label.order, lo=start, key=ORDER)
        merged += labels[start:at]
        merged.append(label)
        start = at
    merged += labels[start:]
    return merged


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
    comparisons: set[int] = field(default_factory=set)  # the completed comparisons among them (not the gold pairs)
    first: int = 0  # the smallest label id among them
    inode: int | None = None  # the file read, and how far: a file written anew by another worker is not read on from an offset
    offset: int = 0
    changed: list[int] = field(default_factory=list)  # the completed comparisons added, in the order added (again after an undo too)
    pairs: dict = field(default_factory=dict)  # what ``training_pairs`` made of them, by purpose (its memos; same lifetime)

    def add(self, records: list[list], gold: list[list], *, through: datetime) -> None:
        """Add completed comparisons (one held already, completed again after an undo: its new labels replace the old) and gold
        pairs' labels (added to those held)."""
        latest = {record[0]: record for record in records}  # the last of a comparison's records
        again = sorted(cid for cid in latest if cid in self.comparisons)
        if again:
            self.labels = _without(self.labels, again)
        self.comparisons.update(latest)
        self.changed += latest
        new = sorted((label for record in itertools.chain(latest.values(), gold) for label in _labels(record)), key=ORDER)
        if new:
            least = min(label.pk for label in new)
            self.first = min(self.first, least) if self.labels else least
        self.labels = _merged(self.labels, new)
        self.through = through


_held: dict[Path, _Kept] = {}
_lock = threading.Lock()


def forget() -> None:
    """Drop what this process holds (as a worker that starts would); the file stays."""
    with _lock:
        _held.clear()


def _kept(*, campaign_id: int, generation: str, through: datetime) -> tuple[_Kept, list[TrainingLabel], int, int | None]:
    """Return the campaign's kept data (comparisons completed before ``through``) and, as it is now, its labels in order, how many
    of its ``changed`` comparisons they hold and their smallest id; read only what this worker lacks and keep it.

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
                # the comparisons first (through comparison_completed_at), then their labels; everything once when nothing is held
                done = Comparison.objects.filter(completed_at__lt=through, is_gold=False)
                gold = PreferenceLabel.objects.filter(comparison_id__in=_gold_ids(campaign_id), created_at__lt=through)
                if since is not None:
                    done, gold = done.filter(completed_at__gte=since), gold.filter(created_at__gte=since)
                completed = PreferenceLabel.objects.filter(comparison_id__in=comparisons_in_campaign(done, campaign_id=campaign_id).values("pk"))
                records, gold_records = _records(completed), _records(gold)  # a gold pair's labels may come in several segments
                kept.add(records, gold_records, through=through)
                segment = {"since": since.isoformat() if since else None, "through": through.isoformat(), "comparisons": records,
                           "gold": gold_records}
                if file_usable and since is not None:
                    _append(path, kept, segment)
                else:
                    _write(path, kept, segment)
        # the list as it is now (a later run replaces it, under this lock), and the set itself, not a copy per run: a later run only
        # adds to it, and what it adds is absent from the labels returned here, so a caller that finds one of them there leaves out
        # nothing
        return kept, kept.labels, len(kept.changed), (kept.first if kept.labels else None)


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
            records, gold, reached = [], [], kept.through  # the segments' comparisons, added at once (one merge, not one per segment)
            for line in file:
                if not line.endswith(b"\n"):
                    break  # being appended, or cut short by a crash
                segment = json.loads(line)
                end = datetime.fromisoformat(segment["through"])
                if end > through:
                    break  # read past a newer mark than this run's: left for the next run
                kept.offset += len(line)
                if segment["since"] == (reached.isoformat() if reached else None):
                    records += segment["comparisons"]
                    gold += segment["gold"]
                    reached = end
            if records or gold or reached != kept.through:
                kept.add(records, gold, through=reached)
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("training data %s unreadable (%s); reading the campaign's labels again", path, exc)
        kept.through, kept.labels, kept.comparisons, kept.first, kept.inode, kept.offset = None, [], set(), 0, None, 0  # dropped with the bad file
        kept.changed, kept.pairs = [], {}
        return False
    return True
