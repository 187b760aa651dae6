"""The labeling form: choices from LabelSubmission, labels for the screen, the submission's refusal as a form error."""

import pytest

from feedback_app.services.labeling import CHOICES, CRITERION_CHOICES, STRENGTHS, LabelSubmission
from feedback_app.views.forms import CHOICE_LABELS, CRITERION_LABELS, STRENGTH_LABELS, LabelForm
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db  # the criteria and flags are the campaign's settings


def test_every_value_of_the_submission_has_a_label_on_screen():
    assert set(CHOICE_LABELS) == set(CHOICES) and set(STRENGTH_LABELS) == set(STRENGTHS) and set(CRITERION_LABELS) == set(CRITERION_CHOICES)


def test_the_form_offers_the_submissions_choices_in_screen_order(settings):
    settings.LABEL_CRITERIA = ["honesty"]
    form = LabelForm(campaign=campaign_default())
    assert [value for value, _ in form.fields["choice"].choices] == list(CHOICES)
    assert [value for value, _ in form.fields["strength"].choices] == list(STRENGTHS)
    assert [label for _, label in form.fields["criterion_honesty"].choices] == ["Left", "Same", "Right"]
    assert [value for value, _ in form.fields["flags"].choices] == LabelSubmission.flag_names()


def test_a_valid_form_makes_the_submission():
    form = LabelForm({"choice": "right", "strength": "3", "criterion_honesty": "tie", "rationale": " kind ", "flags": ["unsafe"], "time_on_task_ms": "12"}, campaign=campaign_default())
    assert form.is_valid(), form.errors
    assert form.submission() == LabelSubmission(choice="right", strength=3, criteria={"honesty": "tie"}, rationale="kind", flags=("unsafe",), time_on_task_ms=12)


def test_a_rule_only_the_submission_knows_becomes_an_error_of_its_field(settings):
    """A flag dropped from the settings after the form was built is refused by LabelSubmission, not by the field."""
    settings.LABEL_FLAGS = ["unsafe", "spam"]
    form = LabelForm({"choice": "left", "flags": ["spam"]}, campaign=campaign_default())
    settings.LABEL_FLAGS = ["unsafe"]
    assert not form.is_valid()
    assert form.errors == {"flags": ["unknown flags: spam"]}


def test_field_errors_are_reported_without_building_a_submission():
    form = LabelForm({"strength": "2"}, campaign=campaign_default())
    assert not form.is_valid()
    assert form.errors == {"choice": ["Pick which response is better (keys 1–4)."]}


def test_a_rewrite_s_newlines_count_as_the_browser_counts_them():
    """A browser posts a textarea's newlines as CRLF; the rewrite is read with "\\n" and its length checked after."""
    from feedback_app.services.labeling import EDITED_TEXT_MAX_CHARS

    text = "a\r\n" * (EDITED_TEXT_MAX_CHARS // 2)
    form = LabelForm({"choice": "left", "edited_text": text}, campaign=campaign_default())
    assert form.is_valid(), form.errors
    assert form.submission().edited_text == "a\n" * (EDITED_TEXT_MAX_CHARS // 2)
