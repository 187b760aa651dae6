"""Importing prompts, responses and already-labelled preferences; each file in one transaction.

The row writers here are shared with import_jobs, which stages big files in chunks instead.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app import events

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Campaign, Comparison, ImportBatch, PreferenceLabel, Prompt, Response, Tag, Winner
from feedback_app.services.import_parsing import PreferenceRecord, PromptRecord, parse_preferences, parse_prompt_items, parse_prompts
from feedback_app.services.label_tally import label_hours_reopen_after_commit
from feedback_app.services.quality_tally import quality_tally_reopen_after_commit


class ImportRefused(Exception):
    """An import that cannot go ahead whatever the file holds; the message says why."""


class DuplicateImport(ImportRefused):
    """The same file was imported before."""


def comparison_pairs(n: int, *, seed: int = 0) -> list[tuple[int, int]]:
    """Return which of ``n`` responses to pair: every pair up to 4 responses, else a shuffled cycle."""
    if n < 2:
        return []
    if n <= 4:
        return list(itertools.combinations(range(n), 2))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [(order[i], order[(i + 1) % n]) for i in range(n)]


def prompts_import(
    *,
    data: bytes,
    filename: str,
    user=None,
    required_labels: int | None = None,
    source: str | None = None,
    allow_duplicate: bool = False,
    campaign_id: int = DEFAULT_CAMPAIGN_ID,
) -> ImportBatch:
    """Import a prompts file (JSONL or CSV) into a campaign; all of it, or nothing and an ImportValidationError."""
    records = parse_prompts(data, filename=filename)
    return prompt_records_import(
        records=records, filename=filename, sha256=hashlib.sha256(data).hexdigest(), user=user,
        required_labels=required_labels, source=source or f"import:{filename}", allow_duplicate=allow_duplicate, campaign_id=campaign_id,
    )


def prompts_import_api(*, items: list, user=None, required_labels: int | None = None, allow_duplicate: bool = False,
                       campaign_id: int = DEFAULT_CAMPAIGN_ID) -> ImportBatch:
    """Import a list of prompts posted to the API; all of it, or nothing and an ImportValidationError.

    The same items (keys in any order) count as the same import: DuplicateImport unless ``allow_duplicate``.
    """
    records = parse_prompt_items(items)
    return prompt_records_import(
        records=records, filename="api", sha256=hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest(), user=user,
        required_labels=required_labels, source="api", allow_duplicate=allow_duplicate, campaign_id=campaign_id,
    )


@transaction.atomic
def prompt_records_import(
    *,
    records: Sequence[PromptRecord],
    filename: str,
    sha256: str,
    user=None,
    required_labels: int | None = None,
    source: str,
    allow_duplicate: bool = False,
    campaign_id: int = DEFAULT_CAMPAIGN_ID,
) -> ImportBatch:
    """Write validated prompt records, their responses and the comparisons between them, into a campaign."""
    batch = batch_create(kind=ImportBatch.Kind.PROMPTS, filename=filename, sha256=sha256, user=user, allow_duplicate=allow_duplicate,
                         campaign_id=campaign_id)
    batch.counts = prompt_rows_write(batch=batch, records=records, required_labels=required_labels, source=source,
                                     status=Comparison.Status.OPEN)
    if batch.counts["comparisons"]:
        events.comparisons_supplied(count=batch.counts["comparisons"], campaign_id=campaign_id)
    batch.save(update_fields=["counts"])
    return batch


def prompt_rows_write(
    *, batch: ImportBatch, records: Sequence[PromptRecord], required_labels: int | None, source: str, status: str
) -> dict[str, int]:
    """Write prompt records, their responses and the comparisons between them (in ``status``); return the counts.

    Call inside a transaction.
    """
    required = required_labels or Campaign.objects.get(pk=batch.campaign_id).required_labels
    prompts = Prompt.objects.bulk_create(
        [Prompt(campaign_id=batch.campaign_id, text=r.prompt, context=r.context, metadata=r.metadata, source=source[:64], import_batch=batch)
         for r in records]
    )
    _tags_attach(prompts, [r.tags for r in records])
    responses = Response.objects.bulk_create(
        [Response(prompt=p, text=text) for p, r in zip(prompts, records) for text in r.responses]
    )
    comparisons = []
    offset = 0
    for prompt, record in zip(prompts, records):
        own = responses[offset : offset + len(record.responses)]
        offset += len(record.responses)
        for i, j in comparison_pairs(len(own), seed=prompt.pk):
            comparisons.append(
                Comparison(prompt=prompt, response_a=own[i], response_b=own[j], required_labels=required, status=status, import_batch=batch)
            )
    Comparison.objects.bulk_create(comparisons, batch_size=2000)
    return {"prompts": len(prompts), "responses": len(responses), "comparisons": len(comparisons),
            "awaiting_generation": sum(1 for r in records if not r.responses)}


def preferences_import(*, data: bytes, filename: str, user=None, allow_duplicate: bool = False,
                       campaign_id: int = DEFAULT_CAMPAIGN_ID) -> ImportBatch:
    """Import labelled pairs (TRL or HH JSONL, or CSV) into a campaign; all of them, or nothing."""
    records = parse_preferences(data, filename=filename)
    return preference_records_import(
        records=records, filename=filename, sha256=hashlib.sha256(data).hexdigest(), user=user, allow_duplicate=allow_duplicate,
        campaign_id=campaign_id,
    )


@transaction.atomic
def preference_records_import(
    *, records: Sequence[PreferenceRecord], filename: str, sha256: str, user=None, allow_duplicate: bool = False,
    campaign_id: int = DEFAULT_CAMPAIGN_ID,
) -> ImportBatch:
    """Write each labelled pair as a complete comparison with one label that has no rater.

    Which of the two responses is stored as "A" is drawn per pair, so no column of the data
    always holds the winner. A margin, when given, becomes the nearest strength.
    """
    batch = batch_create(kind=ImportBatch.Kind.PREFERENCES, filename=filename, sha256=sha256, user=user, allow_duplicate=allow_duplicate,
                         campaign_id=campaign_id)
    chosen_first = chosen_first_draw(sha256=sha256, n=len(records))
    comparisons = preference_pairs_write(batch=batch, records=records, chosen_first=chosen_first, filename=filename, staged=False)
    preference_labels_write(batch=batch, comparison_ids=[c.pk for c in comparisons], records=records, chosen_first=chosen_first)
    batch.counts = {"prompts": len(comparisons), "comparisons": len(comparisons), "labels": len(comparisons)}
    batch.save(update_fields=["counts"])
    return batch


def chosen_first_draw(*, sha256: str, n: int) -> list[bool]:
    """Return, per pair of a file, whether its chosen response is stored as "A" (drawn from the file's hash)."""
    rng = random.Random(sha256)
    return [rng.random() < 0.5 for _ in range(n)]


def preference_pairs_write(
    *, batch: ImportBatch, records: Sequence[PreferenceRecord], chosen_first: Sequence[bool], filename: str, staged: bool
) -> list[Comparison]:
    """Write labelled pairs' prompts, responses and comparisons; staged ones wait, unlabelled, to be published.

    Call inside a transaction.
    """
    prompts = Prompt.objects.bulk_create(
        [Prompt(campaign_id=batch.campaign_id, text=r.prompt, context=r.context, metadata=r.metadata, source=f"preferences:{filename}"[:64],
                import_batch=batch)
         for r in records]
    )
    _tags_attach(prompts, [r.tags for r in records])
    responses = Response.objects.bulk_create(
        [
            Response(prompt=p, text=text)
            for p, r, first in zip(prompts, records, chosen_first)
            for text in ((r.chosen, r.rejected) if first else (r.rejected, r.chosen))
        ]
    )
    status, labels = (Comparison.Status.STAGED, 0) if staged else (Comparison.Status.COMPLETE, 1)
    now = timezone.now()
    if not staged:  # complete when this long transaction commits, perhaps after a quality tally's close passed them
        quality_tally_reopen_after_commit(completed_at=now)
    return Comparison.objects.bulk_create(
        [
            Comparison(prompt=p, response_a=responses[2 * i], response_b=responses[2 * i + 1], required_labels=1,
                       label_count=labels, status=status, import_batch=batch, completed_at=None if staged else now)
            for i, p in enumerate(prompts)
        ],
        batch_size=2000,
    )


def preference_labels_write(
    *, batch: ImportBatch, comparison_ids: Sequence[int], records: Sequence[PreferenceRecord], chosen_first: Sequence[bool]
) -> None:
    """Write each pair's one label that has no rater. Call inside a transaction (a long one: the label tally reopens behind it)."""
    label_hours_reopen_after_commit(created_at=timezone.now())  # every label below is stamped after this
    PreferenceLabel.objects.bulk_create(
        [
            PreferenceLabel(comparison_id=cid, winner=Winner.A if first else Winner.B, strength=_strength_for_margin(r.margin),
                            import_batch=batch, campaign_id=batch.campaign_id)  # the batch's prompts are its campaign's
            for cid, r, first in zip(comparison_ids, records, chosen_first)
        ],
        batch_size=2000,
    )


def batch_create(*, kind: str, filename: str, sha256: str, user, allow_duplicate: bool, published: bool = True,
                 campaign_id: int = DEFAULT_CAMPAIGN_ID) -> ImportBatch:
    """Return a new import batch into the campaign, or raise DuplicateImport for a file imported into it before (unless allowed)."""
    archived = Campaign.objects.filter(pk=campaign_id, state=Campaign.State.ARCHIVED).values_list("slug", flat=True).first()
    if archived:
        raise ImportRefused(f"campaign {archived} is archived; it takes no more imports")
    if not allow_duplicate:
        earlier = ImportBatch.objects.filter(kind=kind, sha256=sha256, campaign_id=campaign_id).first()
        if earlier is not None:
            raise DuplicateImport(
                f"this file was imported already on {earlier.created_at:%Y-%m-%d %H:%M} as {earlier.filename!r} "
                f"(import batch {earlier.pk}); import it again only on purpose (--allow-duplicate)"
            )
    return ImportBatch.objects.create(kind=kind, filename=filename[:255], sha256=sha256, created_by=user, published=published,
                                      campaign_id=campaign_id)


def _tags_attach(prompts: Sequence[Prompt], tag_lists: Iterable[list[str]]) -> None:
    tag_lists = list(tag_lists)
    names = sorted({name for names in tag_lists for name in names})
    if not names:
        return
    Tag.objects.bulk_create([Tag(name=n) for n in names], ignore_conflicts=True)
    ids = dict(Tag.objects.filter(name__in=names).values_list("name", "id"))
    Through = Prompt.tags.through
    Through.objects.bulk_create(
        [Through(prompt_id=p.pk, tag_id=ids[name]) for p, tags in zip(prompts, tag_lists) for name in tags], batch_size=5000
    )


def _strength_for_margin(margin: float | None) -> int:
    if margin is None:
        return PreferenceLabel.Strength.CLEARLY
    margins = settings.STRENGTH_MARGINS
    return min(range(3), key=lambda i: abs(margins[i] - margin)) + 1
