"""The labeling form: what the rater saw, in screen terms (left/right)."""

import re

from django import forms


from feedback_app.models import Campaign
from feedback_app.services.labeling import (
    CHOICES,
    CRITERION_CHOICES,
    DEFAULT_STRENGTH,
    EDITED_FROM_CHOICES,
    EDITED_TEXT_MAX_CHARS,
    STRENGTHS,
    InvalidSubmission,
    LabelSubmission,
)

PG_INTEGER_MAX = 2**31 - 1  # an IntegerField column on PostgreSQL


class AsciiIntegerField(forms.IntegerField):
    """An integer typed in ASCII digits; Django's takes "٣" (int() does)."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not re.fullmatch(r"-?[0-9]{1,19}", value.strip()):
            raise forms.ValidationError("Enter a whole number in the digits 0-9.", code="invalid")
        return super().to_python(value)


class AsciiFloatField(forms.FloatField):
    """A number typed in ASCII (float() takes "٠.٥"); NaN and Infinity are refused by Django already."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not re.fullmatch(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", value.strip()):
            raise forms.ValidationError("Enter a number in the digits 0-9.", code="invalid")
        return super().to_python(value)


class TextareaField(forms.CharField):
    """A textarea's text with its newlines as "\\n" (a browser posts CRLF), so its length is counted as the browser counts it."""

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n") if isinstance(value, str) else value


# What the rater reads for each value of LabelSubmission's choices.
CHOICE_LABELS = {"left": "Left is better", "right": "Right is better", "tie": "Tie", "both_bad": "Both bad"}
STRENGTH_LABELS = {1: "Slightly", 2: "Clearly", 3: "Much"}
CRITERION_LABELS = {"left": "Left", "tie": "Same", "right": "Right"}  # in this order on screen: "Same" between the sides
FLAG_LABELS = {"unsafe": "Unsafe content", "private": "Private information"}
EDITED_FROM_LABELS = {"": "The better reply (both bad: from scratch)", "left": "Left reply", "right": "Right reply"}


def _criterion_choices() -> list[tuple[str, str]]:
    return [(side, CRITERION_LABELS[side]) for side in sorted(CRITERION_CHOICES, key=list(CRITERION_LABELS).index)]


class LabelForm(forms.Form):
    """A label as the rater posts it; LabelSubmission holds the rules, and its refusal is reported as an error of the field at fault."""

    choice = forms.ChoiceField(choices=[(c, CHOICE_LABELS[c]) for c in CHOICES], widget=forms.RadioSelect,
                               error_messages={"required": "Pick which response is better (keys 1–4)."})
    strength = forms.TypedChoiceField(choices=[(s, STRENGTH_LABELS[s]) for s in STRENGTHS], coerce=int, initial=DEFAULT_STRENGTH, required=False,
                                      empty_value=DEFAULT_STRENGTH, widget=forms.RadioSelect)
    rationale = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why? (optional)"}))
    flags = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    # strip=False: white space alone must reach LabelSubmission, which refuses it rather than store no rewrite silently.
    edited_text = TextareaField(required=False, strip=False, max_length=EDITED_TEXT_MAX_CHARS, label="Your rewrite",
                                  widget=forms.Textarea(attrs={"rows": 6, "placeholder": "The better reply as you would have written it (optional)"}))
    edited_from = forms.ChoiceField(choices=[(c, EDITED_FROM_LABELS[c]) for c in ("", *EDITED_FROM_CHOICES)], required=False,
                                    initial="", widget=forms.RadioSelect, label="Started from")
    time_on_task_ms = AsciiIntegerField(required=False, min_value=0, max_value=PG_INTEGER_MAX, widget=forms.HiddenInput)

    def __init__(self, *args, campaign: Campaign, **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign = campaign  # whose criteria and flags the form offers
        self.fields["flags"].choices = [(f, FLAG_LABELS.get(f, f.title())) for f in LabelSubmission.flag_names(campaign)]
        for name in LabelSubmission.criterion_names(campaign):
            self.fields[f"criterion_{name}"] = forms.ChoiceField(
                choices=_criterion_choices(), required=False, widget=forms.RadioSelect, label=name.title()
            )

    def criterion_fields(self):
        return [self[f"criterion_{name}"] for name in LabelSubmission.criterion_names(self.campaign)]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        criteria = {name: data[f"criterion_{name}"] for name in LabelSubmission.criterion_names(self.campaign) if data.get(f"criterion_{name}")}
        try:
            self._submission = LabelSubmission(
                choice=data["choice"],
                strength=data["strength"],
                criteria=criteria,
                rationale=data["rationale"].strip(),
                flags=tuple(data["flags"]),
                edited_text=data["edited_text"],
                edited_from=data["edited_from"],
                time_on_task_ms=data.get("time_on_task_ms"),
                campaign=self.campaign,
            )
        except InvalidSubmission as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return data

    def submission(self) -> LabelSubmission:
        """Return the submission the valid form makes (call after is_valid)."""
        return self._submission
