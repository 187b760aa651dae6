"""A rater's rewrite stored as a human_edit response, in the label's transaction."""

import pytest

from feedback_app.models import Assignment, PreferenceLabel, Response
from feedback_app.services.labeling import InvalidSubmission, LabelConflict, LabelSubmission, label_record, label_undo_last
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.services.rewrites import rewrite_create, rewrite_start, rewrite_text_normal
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


def _leased(rater, comparison, *, a_on_left=True):
    assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
    assert assignment.comparison_id == comparison.pk
    Assignment.objects.filter(pk=assignment.pk).update(a_on_left=a_on_left)


def test_a_rewrite_of_the_chosen_reply_is_a_human_edit_response_linked_to_it(rater, make_comparisons):
    """Choosing right with B on the right: the rewrite starts from B, on the same prompt, and the label links to it."""
    (comparison,) = make_comparisons(1)
    _leased(rater, comparison)
    label, _ = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk,
                            submission=LabelSubmission(choice="right", edited_text="Please wait;\r\nit ships today. "))
    rewrite = label.rewrite
    assert rewrite.source == Response.Source.HUMAN_EDIT and rewrite.origin == "human_edit"
    assert rewrite.edited_from_id == comparison.response_b_id and rewrite.prompt_id == comparison.prompt_id
    assert rewrite.text == "Please wait;\nit ships today." and label.edited_text == "Please wait;\r\nit ships today. "


@pytest.mark.parametrize(("choice", "edited_from", "a_on_left", "start"), [
    ("tie", "left", False, "b"), ("tie", "right", False, "a"), ("both_bad", "left", True, "a"), ("both_bad", "", True, None),
    ("left", "left", True, "a"),
])
def test_the_start_follows_the_choice_in_response_terms(rater, make_comparisons, choice, edited_from, a_on_left, start):
    """A tie names its start; both bad may start from scratch; sides are translated to responses."""
    (comparison,) = make_comparisons(1)
    _leased(rater, comparison, a_on_left=a_on_left)
    label, _ = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk,
                            submission=LabelSubmission(choice=choice, edited_text="A better reply.", edited_from=edited_from))
    expected = {"a": comparison.response_a_id, "b": comparison.response_b_id, None: None}[start]
    assert label.rewrite.edited_from_id == expected


def test_no_text_makes_no_rewrite(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    _leased(rater, comparison)
    label, _ = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"))
    assert label.rewrite is None and not Response.objects.filter(source=Response.Source.HUMAN_EDIT).exists()


def test_a_text_the_same_as_a_reply_is_no_rewrite(rater, make_comparisons):
    """The chosen reply sent back unchanged (with CRLF and trailing space) stores the label and no rewrite."""
    (comparison,) = make_comparisons(1)
    _leased(rater, comparison)
    text = comparison.response_a.text + "\r\n"
    label, created = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left", edited_text=text))
    assert created and label.rewrite is None and label.edited_text == text
    assert not Response.objects.filter(source=Response.Source.HUMAN_EDIT).exists()


def test_a_retry_makes_no_second_rewrite_and_a_different_start_is_a_conflict(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    _leased(rater, comparison)
    submission = LabelSubmission(choice="tie", edited_text="Both miss the date; it ships Monday.", edited_from="left")
    first, _ = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=submission)
    again, created = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=submission)
    assert not created and again.pk == first.pk and again.rewrite_id == first.rewrite_id
    assert Response.objects.filter(source=Response.Source.HUMAN_EDIT).count() == 1
    with pytest.raises(LabelConflict):
        label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk,
                     submission=LabelSubmission(choice="tie", edited_text=submission.edited_text, edited_from="right"))
    with pytest.raises(LabelConflict):
        label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="tie", edited_text="Another text.", edited_from="left"))


def test_a_failed_label_leaves_no_rewrite_behind(rater, make_comparisons, monkeypatch):
    """The rewrite and the label commit together: an error after the rewrite is written rolls both back."""
    from feedback_app.services import labeling

    (comparison,) = make_comparisons(1)
    _leased(rater, comparison)

    def broken(**kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(labeling.events, "label_recorded", broken)
    with pytest.raises(RuntimeError):
        label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left", edited_text="Better."))
    assert not PreferenceLabel.objects.exists() and not Response.objects.filter(source=Response.Source.HUMAN_EDIT).exists()


def test_undo_removes_the_rewrite_with_its_label(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    _leased(rater, comparison)
    label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left", edited_text="Better."))
    label_undo_last(campaign=campaign_default(), rater=rater)
    assert not Response.objects.filter(source=Response.Source.HUMAN_EDIT).exists()


@pytest.mark.parametrize(("fields", "field"), [
    ({"choice": "left", "edited_text": " \n\t "}, "edited_text"),
    ({"choice": "left", "edited_text": "x" * 20001}, "edited_text"),
    ({"choice": "left", "edited_text": "Better.", "edited_from": "right"}, "edited_from"),
    ({"choice": "left", "edited_from": "a"}, "edited_from"),
])
def test_submission_refuses_a_bad_rewrite_naming_its_field(fields, field):
    with pytest.raises(InvalidSubmission) as caught:
        LabelSubmission(**fields)
    assert caught.value.field == field


def test_a_tie_s_rewrite_without_a_start_was_written_from_scratch(rater, make_comparisons):
    """As after both bad: no start named, no start linked (the label page without JavaScript shows an empty box)."""
    (comparison,) = make_comparisons(1)
    _leased(rater, comparison)
    label, _ = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="tie", edited_text="It ships Monday."))
    assert label.rewrite.text == "It ships Monday." and label.rewrite.edited_from is None


def test_rewrite_start_and_normal_text(make_comparisons):
    (comparison,) = make_comparisons(1)
    assert rewrite_start(comparison=comparison, winner="a", edited_from="b") == comparison.response_a
    assert rewrite_start(comparison=comparison, winner="tie", edited_from="b") == comparison.response_b
    assert rewrite_start(comparison=comparison, winner="both_bad", edited_from="") is None
    assert rewrite_text_normal(" a\r\nb\rc \n") == "a\nb\nc"
    assert rewrite_create(comparison=comparison, text="  ", start=None) is None
