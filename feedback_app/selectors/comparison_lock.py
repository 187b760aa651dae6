"""The comparison a label locks, and the rater's assignment of it, read with the lock or after it."""

from __future__ import annotations

from feedback_app.models import Assignment, Comparison, PreferenceLabel, Prompt, Role
from feedback_app.selectors import rows
from feedback_app.selectors.campaigns import MEMBERSHIP_COLUMNS, campaign_role_of
from feedback_app.selectors.labeling import row_lock_clause


def comparison_of_campaign(*, comparison_id: int, campaign_id: int, lock: str = "") -> Comparison | None:
    """Return the comparison if it belongs to the campaign, else None; ``lock`` as for ``row_lock_clause``. Written out: every label asks it."""
    sql = (f"SELECT {rows.columns(Comparison, 'c')} FROM {Comparison._meta.db_table} c INNER JOIN {Prompt._meta.db_table} p ON p.id = c.prompt_id "
           f"WHERE c.id = %s AND p.campaign_id = %s {row_lock_clause(lock)}")
    found = rows.one(sql, [comparison_id, campaign_id], Comparison)
    return None if found is None else found[0]


def comparison_locked_with_assignment(*, rater, comparison_id: int, campaign_id: int) -> tuple[Comparison, tuple | None] | None:
    """Lock the campaign's comparison (``comparison_of_campaign`` with ``lock="wait"``) and return it with what
    ``assignment_of_rater`` returns for the rater; None where the campaign has no such comparison. A label reads both.

    One statement where that reads what the two would: the locking statement's joined rows (the rater's assignment, its
    label, their membership) are read in its snapshot, and the row it locks as it is now (``assignment_of_rater``'s
    docstring). Every write that a label must see (a label, a lease, a skip, an undo of that comparison) writes the
    comparison's row under its lock, so the two differ only where the row locked is a later version than the one that
    snapshot sees. The statement says so itself: it compares the locked row's ``xmin`` with that of the version its
    snapshot sees (a sub-query, read in the statement's snapshot, also when PostgreSQL rereads the locked row after a wait).
    Where they differ, the assignment is read again by ``assignment_of_rater``, a statement of its own, after the lock, as
    before. On SQLite no other writer runs while a write transaction holds the database's lock: always one statement.
    """
    locks = rows.row_locks()
    same_version = f", c.xmin = (SELECT s.xmin FROM {Comparison._meta.db_table} s WHERE s.id = c.id)" if locks else ""
    sql = (f"SELECT {rows.columns(Comparison, 'c')}, {rows.columns(Assignment, 'a')}, l.id, {MEMBERSHIP_COLUMNS.format(user_column='%s')}"
           f"{same_version} FROM {Comparison._meta.db_table} c INNER JOIN {Prompt._meta.db_table} p ON p.id = c.prompt_id "
           f"LEFT JOIN {Assignment._meta.db_table} a ON a.comparison_id = c.id AND a.rater_id = %s "
           f"LEFT JOIN {PreferenceLabel._meta.db_table} l ON l.assignment_id = a.id "
           f"WHERE c.id = %s AND p.campaign_id = %s {row_lock_clause('wait')}")
    found = rows.one(sql, [campaign_id, rater.pk, rater.pk, rater.pk, comparison_id, campaign_id], Comparison, Assignment)
    if found is None:
        return None
    comparison, assignment, label_id, membership, any_membership, *same = found
    if locks and not same[0]:
        return comparison, assignment_of_rater(rater=rater, comparison_id=comparison_id, campaign_id=campaign_id)
    if assignment is None:
        return comparison, None
    return comparison, (assignment, label_id, campaign_role_of(user=rater, campaign_id=campaign_id, membership=membership,
                                                               any_membership=bool(any_membership)))


def assignment_of_rater(*, rater, comparison_id: int, campaign_id: int) -> tuple[Assignment, int | None, Role | None] | None:
    """Return the rater's assignment of the comparison, the id of its label (None before one) and the rater's role in the
    campaign (``campaign_role``, read in the same statement), or None if they never held it.

    A statement of its own, after the one that locks the comparison: on PostgreSQL a statement that waited for a row lock
    sees the locked row as it is now but joined rows as they were when it began, so a label that another transaction
    (a double click) committed meanwhile would be missed if this were joined into the locking statement.
    """
    sql = (f"SELECT {rows.columns(Assignment, 'a')}, l.id, {MEMBERSHIP_COLUMNS.format(user_column='a.rater_id')} "
           f"FROM {Assignment._meta.db_table} a LEFT JOIN {PreferenceLabel._meta.db_table} l ON l.assignment_id = a.id "
           f"WHERE a.comparison_id = %s AND a.rater_id = %s")
    found = rows.one(sql, [campaign_id, comparison_id, rater.pk], Assignment)
    if found is None:
        return None
    assignment, label_id, membership, any_membership = found
    return assignment, label_id, campaign_role_of(user=rater, campaign_id=campaign_id, membership=membership, any_membership=bool(any_membership))
