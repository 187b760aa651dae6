"""The labeling form: what the rater saw, in screen terms (left/right)."""

import re

from django import forms
from django.conf import settings

from feedback_app.services.labeling import LabelSubmission

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


CHOICE_LABELS = [("left", "Left is better"), ("right", "Right is better"), ("tie", "Tie"), ("both_bad", "Both bad")]
STRENGTH_LABELS = [(1, "Slightly"), (2, "Clearly"), (3, "Much")]
CRITERION_LABELS = [("left", "Left"), ("tie", "Same"), ("right", "Right")]
FLAG_LABELS = {"unsafe": "Unsafe content", "private": "Private information"}


class LabelForm(forms.Form):
    choice = forms.ChoiceField(choices=CHOICE_LABELS, widget=forms.RadioSelect, error_messages={"required": "Pick which response is better (keys 1–4)."})
    strength = forms.TypedChoiceField(choices=STRENGTH_LABELS, coerce=int, initial=2, required=False, empty_value=2, widget=forms.RadioSelect)
    rationale = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why? (optional)"}))
    flags = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    time_on_task_ms = AsciiIntegerField(required=False, min_value=0, max_value=PG_INTEGER_MAX, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flags"].choices = [(f, FLAG_LABELS.get(f, f.title())) for f in settings.LABEL_FLAGS]
        for name in settings.LABEL_CRITERIA:
            self.fields[f"criterion_{name}"] = forms.ChoiceField(
                choices=CRITERION_LABELS, required=False, widget=forms.RadioSelect, label=name.title()
            )

    def criterion_fields(self):
        return [self[f"criterion_{name}"] for name in settings.LABEL_CRITERIA]

    def submission(self) -> LabelSubmission:
        data = self.cleaned_data
        criteria = {name: data[f"criterion_{name}"] for name in settings.LABEL_CRITERIA if data.get(f"criterion_{name}")}
        return LabelSubmission(
            choice=data["choice"],
            strength=data["strength"],
            criteria=criteria,
            rationale=data["rationale"].strip(),
            flags=tuple(data["flags"]),
            time_on_task_ms=data.get("time_on_task_ms"),
        )
