"""Recording raters' labels, skipping and undoing (the leases themselves: ``services.leasing``).

Every function here is one transaction. The comparison row is the lock: leasing, labelling,
skipping and undoing all take it (SELECT ... FOR UPDATE on PostgreSQL; on SQLite every write
transaction starts with BEGIN IMMEDIATE and so holds the database's write lock), so two
raters never hold the same slot and no comparison collects more labels than it asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app import events
from feedback_app.models import Assignment, AuditEntry, Campaign, Comparison, PreferenceLabel, Response
from feedback_app.models.labels import side_to_winner
from feedback_app.selectors.comparison_lock import comparison_locked_with_assignment, comparison_of_campaign
from feedback_app.selectors.labeling import active_lease_count, assignment_current_sql, labels_for_rater_newest
from feedback_app.selectors.campaigns import campaign_cached
from feedback_app.selectors.queue_head import queue_head_forget
from feedback_app.selectors.review import review_marks
from feedback_app.services.arena_gate import arena_ask_after_commit
from feedback_app.services.auto_refit import refit_ask_after_commit
from feedback_app.services.policy_cadence import policy_ask_after_commit
from feedback_app.services import rows
from feedback_app.services.qualification import qualification_grade
from feedback_app.services.label_tally import label_hour_withdraw
from feedback_app.services.leasing import (
    SLOTS_RECOUNT_BUT_ONE,
    UNREAD,
    PickBeside,
    comparison_slots_recount,
    lease_next_without_waiting,
    lease_pick_beside,
    lease_settled,
    slots_recount_params,
)
from feedback_app.services.quality_tally import quality_tally_withdraw
from feedback_app.services.rewrites import rewrite_create, rewrite_delete, rewrite_start

CHOICES = ("left", "right", "tie", "both_bad")  # the sides as shown on screen
CRITERION_CHOICES = ("left", "right", "tie")
STRENGTHS = (1, 2, 3)  # slightly, clearly, much better
DEFAULT_STRENGTH = 2
EDITED_FROM_CHOICES = ("left", "right")  # the reply a rewrite started from, as shown; "" for the chosen one, or from scratch
EDITED_TEXT_MAX_CHARS = 20000


class LabelingError(Exception):
    """A label or lease request that cannot be carried out; the message says why."""


class ComparisonNotFound(LabelingError):
    pass


class NotLeased(LabelingError):
    """The comparison is not (or no longer) leased to this rater."""


class LabelConflict(LabelingError):
    """The rater labelled this comparison already, differently."""

    def __init__(self, message: str, label: PreferenceLabel) -> None:
        super().__init__(message)
        self.label = label


class NothingToUndo(LabelingError):
    pass


class InvalidSubmission(ValueError):
    """A label that breaks a rule of LabelSubmission; ``field`` names the part at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class LabelSubmission:
    """A rater's verdict as shown on screen: sides, not responses.

    The one declaration of what a label may hold; the rater's form and the API's serializer take
    their choices from here and report an InvalidSubmission as an error of its field.
    """

    choice: str  # one of CHOICES
    strength: int = DEFAULT_STRENGTH  # one of STRENGTHS
    criteria: dict[str, str] = field(default_factory=dict)  # criterion (one of criterion_names()) -> one of CRITERION_CHOICES
    rationale: str = ""
    flags: tuple[str, ...] = ()  # some of flag_names()
    edited_text: str = ""  # a rewrite of the better reply; "" for none
    edited_from: str = ""  # "" or one of EDITED_FROM_CHOICES: which reply the rewrite started from ("" after a tie or both bad: from scratch)
    time_on_task_ms: int | None = None
    campaign: Campaign | None = field(default=None, compare=False)  # whose criteria and flags apply; None: the default campaign's

    @staticmethod
    def criterion_names(campaign: Campaign | None = None) -> list[str]:
        """Return the criteria a rater may judge separately: the campaign's, else LABEL_CRITERIA."""
        return list((campaign or campaign_cached()).criteria or settings.LABEL_CRITERIA)

    @staticmethod
    def flag_names(campaign: Campaign | None = None) -> list[str]:
        """Return the flags a rater may raise: the campaign's, else LABEL_FLAGS."""
        return list((campaign or campaign_cached()).flags or settings.LABEL_FLAGS)

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise InvalidSubmission(f"choice must be one of {', '.join(CHOICES)}", field="choice")
        if self.strength not in STRENGTHS:
            raise InvalidSubmission(f"strength must be {', '.join(map(str, STRENGTHS[:-1]))} or {STRENGTHS[-1]}", field="strength")
        criteria = self.criterion_names(self.campaign)
        unknown = sorted(set(self.criteria) - set(criteria))
        if unknown:
            raise InvalidSubmission(f"unknown criteria {unknown}; expected some of {criteria}", field="criteria")
        for name, value in self.criteria.items():
            if value not in CRITERION_CHOICES:
                raise InvalidSubmission(f"criterion {name!r} must be one of {', '.join(CRITERION_CHOICES)}", field="criteria")
        unknown_flags = set(self.flags) - set(self.flag_names(self.campaign))
        if unknown_flags:
            raise InvalidSubmission(f"unknown flags: {', '.join(sorted(unknown_flags))}", field="flags")
        self._check_rewrite()

    def _check_rewrite(self) -> None:
        if self.edited_from and self.edited_from not in EDITED_FROM_CHOICES:
            raise InvalidSubmission(f"edited_from must be empty or one of {', '.join(EDITED_FROM_CHOICES)}", field="edited_from")
        if len(self.edited_text) > EDITED_TEXT_MAX_CHARS:
            raise InvalidSubmission(f"the rewrite is longer than {EDITED_TEXT_MAX_CHARS} characters", field="edited_text")
        if not self.edited_text:
            return
        if not self.edited_text.strip():
            raise InvalidSubmission("the rewrite is only white space: leave it empty for no rewrite, or write one", field="edited_text")
        if self.choice in EDITED_FROM_CHOICES and self.edited_from not in ("", self.choice):
            raise InvalidSubmission(f"a rewrite starts from the better reply; you chose {self.choice}", field="edited_from")


@transaction.atomic
def label_record(
    *, rater, campaign: Campaign, comparison_id: int, submission: LabelSubmission, now: datetime | None = None
) -> tuple[PreferenceLabel, bool]:
    """Store a rater's label on a comparison of the campaign once; return (label, created).

    A repeated identical submission returns the stored label; a different one raises
    LabelConflict. A lease that expired is still honoured while its slot is free, but not once
    the rater has left the campaign.
    """
    return _label_record(rater=rater, campaign=campaign, comparison_id=comparison_id, submission=submission, now=now or timezone.now())[:2]


def label_record_and_lease_next(
    *, rater, campaign: Campaign, comparison_id: int, submission: LabelSubmission, now: datetime | None = None
) -> tuple[PreferenceLabel, bool, Assignment | None]:
    """``label_record``, then ``assignment_lease_next``: return (label, created, the rater's next lease or None).

    One transaction where it can be (two fewer round trips, and on SQLite one wait for the write lock, not two); a retry
    of the same label finds the lease the first call made. While it holds the labelled comparison's lock it waits for no
    other: where the next lease would have to wait, the label commits first and the lease is taken in a transaction
    of its own, as ``assignment_lease_next`` takes it.
    """
    now = now or timezone.now()
    beside = lease_pick_beside(rater=rater, campaign=campaign, now=now)  # the next pick, in the label's statement where it can be
    with transaction.atomic():
        label, created, current_id = _label_record(rater=rater, campaign=campaign, comparison_id=comparison_id, submission=submission, now=now,
                                                   read_current=True, beside=beside)
        following = lease_next_without_waiting(rater=rater, campaign=campaign, now=now, current_id=current_id, beside=beside)
    return label, created, lease_settled(following, rater=rater, campaign=campaign, now=now)


def _label_record(*, rater, campaign: Campaign, comparison_id: int, submission: LabelSubmission, now: datetime,
                  read_current: bool = False, beside: PickBeside | None = None) -> tuple[PreferenceLabel, bool, object]:
    """``label_record``'s work, and the id of the rater's other current lease (``assignment_current_sql``) where ``read_current``
    and a label was written (in the same statement on PostgreSQL), else ``UNREAD``; call inside a transaction. Where it
    writes a label with ``read_current``, the same statement makes ``beside``'s pick (``PickBeside.taken``), if it has one."""
    # the comparison locked, and the rater's lease on it read after the lock: a label committed while it waited is seen
    locked = comparison_locked_with_assignment(rater=rater, comparison_id=comparison_id, campaign_id=campaign.pk)
    if locked is None:
        raise _not_found(campaign=campaign, comparison_id=comparison_id)
    comparison, found = locked
    if found is None:
        raise NotLeased(f"comparison {comparison_id} is not leased to you")
    assignment, label_id, role = found
    existing = PreferenceLabel.objects.get(pk=label_id) if label_id is not None else None
    winner = side_to_winner(submission.choice, a_on_left=assignment.a_on_left)
    criteria = {name: side_to_winner(value, a_on_left=assignment.a_on_left) for name, value in submission.criteria.items()}
    edited_from = side_to_winner(submission.edited_from, a_on_left=assignment.a_on_left) if submission.edited_from else ""
    start = rewrite_start(comparison=comparison, winner=winner, edited_from=edited_from) if submission.edited_text else None
    if existing is not None:
        if _same_label(existing, winner=winner, criteria=criteria, submission=submission, start=start):
            return existing, False, UNREAD
        raise LabelConflict(f"you labelled comparison {comparison_id} already, with a different answer", existing)
    if assignment.status != Assignment.Status.LEASED:
        raise NotLeased(f"comparison {comparison_id} is not leased to you (you {assignment.status} it)")
    if role is None:
        raise NotLeased(f"you are no longer a member of campaign {campaign.slug}")
    if campaign.state == Campaign.State.ARCHIVED:
        raise NotLeased(f"campaign {campaign.slug} is archived; it takes no more labels")
    full = not comparison.is_gold and comparison.label_count >= comparison.required_labels
    if comparison.status != Comparison.Status.OPEN or full:
        raise NotLeased(f"comparison {comparison_id} has all the labels it needs")
    if assignment.lease_expires_at <= now and not comparison.is_gold:
        others = active_lease_count(comparison_id=comparison.pk, now=now)
        if comparison.label_count + others >= comparison.required_labels:
            raise NotLeased(f"your lease on comparison {comparison_id} expired and its slot was taken")
    time_on_task = submission.time_on_task_ms
    if time_on_task is None or time_on_task < 0:
        time_on_task = int((now - assignment.leased_at).total_seconds() * 1000)
    rewrite = rewrite_create(comparison=comparison, text=submission.edited_text, start=start) if submission.edited_text else None
    # Its lease and rewrite by key: an instance set on a one-to-one field also caches the label on it (the reverse), a
    # reference cycle that only the garbage collector frees, with everything hanging on the two.
    label = PreferenceLabel(
        comparison=comparison,
        campaign_id=campaign.pk,
        rater=rater,
        assignment_id=assignment.pk,
        winner=winner,
        strength=submission.strength,
        criteria=criteria,
        rationale=submission.rationale,
        flags=sorted(set(submission.flags)),
        edited_text=submission.edited_text,
        rewrite_id=None if rewrite is None else rewrite.pk,
        a_on_left=assignment.a_on_left,
        time_on_task_ms=min(time_on_task, 2**31 - 1),
        guidelines_version=campaign.guidelines_version,  # as this process saw them at most 10 s ago
    )
    assignment.status = Assignment.Status.SUBMITTED
    assignment.finished_at = now
    comparison.label_count += 1
    fields = ["label_count", *_review_marks_set(comparison=comparison, flagged=comparison.flagged or bool(label.flags), adding=winner)]
    if comparison.label_count >= comparison.required_labels and not comparison.is_gold:
        comparison.status = Comparison.Status.COMPLETE
        comparison.completed_at = now
        fields += ["status", "completed_at"]
    # The label, its lease's end and the comparison's counts: one statement on PostgreSQL, whose recount reads the lease as it was
    # before it (still leased), so leaves it out. A gold pair has no slots to count.
    recount, recount_params = ("", []) if comparison.is_gold else (SLOTS_RECOUNT_BUT_ONE, slots_recount_params(now, but=assignment.pk))
    reads = [assignment_current_sql(rater=rater, campaign_id=campaign.pk, now=now, other_than=assignment.pk)] if read_current else []
    withs = []
    if reads and beside is not None and beside.pick is not None:
        withs, reads = beside.parts(*reads[0])
    values = rows.insert_then_update(label, [(assignment, ["status", "finished_at"], "", []), (comparison, fields, recount, recount_params)],
                                     reads=reads, withs=withs)
    current_id = values[0] if read_current else UNREAD
    if withs:
        beside.taken(*values[1:])
    if comparison.is_gold and campaign.qualification_pairs:
        qualification_grade(rater=rater, campaign=campaign)
    events.label_recorded(campaign_id=campaign.pk)
    refit_ask_after_commit(label_id=label.pk, campaign=campaign)
    policy_ask_after_commit(label_id=label.pk, campaign=campaign)
    if comparison.kind == Comparison.Kind.ARENA:
        arena_ask_after_commit(campaign_id=campaign.pk)
    return label, True, current_id


def _review_marks_set(*, comparison: Comparison, flagged: bool, adding: str | None = None) -> list[str]:
    """Set the comparison's review marks from its raters' labels as they stand, and ``adding``, the winner of a rater's label
    about to be written (its ``label_count`` already counts it); return the fields that changed.

    Call while holding the comparison's row lock. A gold pair is never marked disputed: its
    answer is known, and reading its votes would read one label per rater of the campaign.
    """
    winners = []
    if comparison.label_count >= 2 and not comparison.is_gold:
        winners = list(PreferenceLabel.objects.filter(comparison=comparison, rater__isnull=False).values_list("winner", flat=True))
        if adding is not None:
            winners.append(adding)
    marks = review_marks(winners, flagged=flagged)
    changed = [name for name, value in marks.items() if getattr(comparison, name) != value]
    for name in changed:
        setattr(comparison, name, marks[name])
    return changed


def _comparison_locked(*, campaign: Campaign, comparison_id: int) -> Comparison:
    """Lock and return the campaign's comparison ``comparison_id``; one of another campaign is as good as missing."""
    comparison = comparison_of_campaign(comparison_id=comparison_id, campaign_id=campaign.pk, lock="wait")
    if comparison is None:
        raise _not_found(campaign=campaign, comparison_id=comparison_id)
    return comparison


def _not_found(*, campaign: Campaign, comparison_id: int) -> ComparisonNotFound:
    return ComparisonNotFound(f"comparison {comparison_id} does not exist in campaign {campaign.slug}")


def _same_label(label: PreferenceLabel, *, winner: str, criteria: dict, submission: LabelSubmission, start: Response | None) -> bool:
    return (
        label.winner == winner
        and label.strength == submission.strength
        and label.criteria == criteria
        and label.rationale == submission.rationale
        and sorted(label.flags) == sorted(set(submission.flags))
        and label.edited_text == submission.edited_text
        and (label.rewrite_id is None or label.rewrite.edited_from_id == (start.pk if start else None))
    )


@transaction.atomic
def assignment_skip(*, rater, campaign: Campaign, comparison_id: int, now: datetime | None = None) -> None:
    """Give a leased comparison of the campaign back to the pool; the rater is not shown it again."""
    now = now or timezone.now()
    _comparison_locked(campaign=campaign, comparison_id=comparison_id)
    assignment = Assignment.objects.filter(comparison_id=comparison_id, rater=rater).first()
    if assignment is None or assignment.status != Assignment.Status.LEASED:
        raise NotLeased(f"comparison {comparison_id} is not leased to you")
    assignment.status = Assignment.Status.SKIPPED
    assignment.finished_at = now
    assignment.save(update_fields=["status", "finished_at"])
    comparison_slots_recount(comparison_ids=[comparison_id], now=now)


@transaction.atomic
def label_undo_last(*, rater, campaign: Campaign, now: datetime | None = None) -> Assignment:
    """Withdraw the rater's most recent label in the campaign and lease its comparison back to them.

    Allowed while the comparison is still open to that rater: within the campaign's lease time of the
    label, and not for a comparison that was retired since. Return the renewed assignment.
    """
    now = now or timezone.now()
    label = labels_for_rater_newest(rater=rater, campaign_id=campaign.pk).first()
    if label is None or label.assignment_id is None:
        raise NothingToUndo("you have no label to undo")
    quality_tally_withdraw(label=label, now=now)  # before the comparison's lock: the tallies' lock comes first
    comparison = Comparison.objects.select_for_update(of=("self",)).get(pk=label.comparison_id)
    if comparison.status == Comparison.Status.RETIRED:
        raise NothingToUndo("that comparison was retired; its label can no longer be undone")
    if now - label.created_at > timedelta(seconds=campaign.lease_time):
        raise NothingToUndo("your last label is too old to undo")
    assignment = label.assignment
    AuditEntry.objects.create(
        actor=rater,
        action="label.undo",
        target=f"comparison:{comparison.pk}",
        details={"label_id": label.pk, "winner": label.winner, "strength": label.strength, "rewrite_id": label.rewrite_id},
    )
    rewrite_id = label.rewrite_id
    label_hour_withdraw(label=label, campaign_id=campaign.pk, now=now)
    label.withdrawn = True  # out of the label counts and the quality tallies: its deletion reopens neither
    label.delete()
    rewrite_delete(response_id=rewrite_id)
    comparison.label_count -= 1
    comparison.status = Comparison.Status.OPEN
    comparison.completed_at = None
    queue_head_forget(campaign.pk)
    flagged = PreferenceLabel.objects.filter(comparison=comparison).exclude(flags=[]).exists()
    comparison.save(update_fields=["label_count", "status", "completed_at", *_review_marks_set(comparison=comparison, flagged=flagged)])
    assignment.status = Assignment.Status.LEASED
    assignment.finished_at = None
    assignment.leased_at = now
    assignment.lease_expires_at = now + timedelta(seconds=campaign.lease_time)
    assignment.save(update_fields=["status", "finished_at", "leased_at", "lease_expires_at"])
    comparison_slots_recount(comparison_ids=[comparison.pk], now=now)
    return assignment
