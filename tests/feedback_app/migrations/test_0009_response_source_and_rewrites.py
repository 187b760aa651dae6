"""Migration 0009: existing responses get their source; labels that hold an edited text get their rewrite."""

import importlib

import pytest
from django.apps import apps
from django.utils import timezone

from feedback_app.models import Assignment, PolicyVersion, PreferenceLabel, Response

pytestmark = pytest.mark.django_db
migration = importlib.import_module("feedback_app.migrations.0009_response_source_and_rewrites")


def run(function) -> None:
    function(apps, None)  # data only: no schema editor needed (SQLite refuses one inside the test's transaction)


def test_responses_take_their_source_from_their_policy_version(make_comparisons):
    (comparison,) = make_comparisons(1)
    policy = PolicyVersion.objects.create(name="policy-1", path="policy/policy-1")
    Response.objects.filter(pk=comparison.response_b_id).update(policy_version=policy)
    Response.objects.update(source="imported")  # as every row is right after the column was added
    run(migration.sources_derive)
    assert dict(Response.objects.values_list("pk", "source")) == {comparison.response_a_id: "imported", comparison.response_b_id: "policy"}


def _labelled(make_user, comparison, *, winner: str, edited_text: str) -> PreferenceLabel:
    rater = make_user()
    now = timezone.now()
    assignment = Assignment.objects.create(comparison=comparison, rater=rater, a_on_left=True, leased_at=now, lease_expires_at=now)
    return PreferenceLabel.objects.create(comparison=comparison, rater=rater, assignment=assignment, winner=winner, edited_text=edited_text)


def test_edited_texts_become_rewrites_once(make_user, make_comparisons):
    """a/b start from the chosen reply, tie and both bad from none (not recorded); blank or a reply's own text is no rewrite."""
    c1, c2, c3, c4 = make_comparisons(4, required_labels=2)
    chosen_b = _labelled(make_user, c1, winner="b", edited_text="Please wait;\r\nit ships Monday. ")
    tie = _labelled(make_user, c2, winner="tie", edited_text="Both were late; it ships Monday.")
    same = _labelled(make_user, c3, winner="a", edited_text=c3.response_a.text + "\n")
    blank = _labelled(make_user, c4, winner="both_bad", edited_text="  \n")
    plain = _labelled(make_user, c4, winner="a", edited_text="")
    run(migration.rewrites_backfill)
    run(migration.rewrites_backfill)  # a second run changes nothing
    for label in (chosen_b, tie, same, blank, plain):
        label.refresh_from_db()
    assert chosen_b.rewrite.text == "Please wait;\nit ships Monday." and chosen_b.rewrite.edited_from_id == c1.response_b_id
    assert chosen_b.rewrite.source == "human_edit" and chosen_b.rewrite.prompt_id == c1.prompt_id
    assert tie.rewrite.edited_from is None
    assert same.rewrite is None and blank.rewrite is None and plain.rewrite is None
    assert Response.objects.filter(source="human_edit").count() == 2


def test_going_back_removes_the_rewrites(make_user, make_comparisons):
    (comparison,) = make_comparisons(1)
    label = _labelled(make_user, comparison, winner="a", edited_text="It ships Monday.")
    run(migration.rewrites_backfill)
    run(migration.rewrites_remove)
    label.refresh_from_db()
    assert label.rewrite is None and not Response.objects.filter(source="human_edit").exists() and Response.objects.count() == 2
