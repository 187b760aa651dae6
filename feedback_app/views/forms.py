"""The labeling form: what the rater saw, in screen terms (left/right)."""

from django import forms
from django.conf import settings

from feedback_app.services.labeling import LabelSubmission

CHOICE_LABELS = [("left", "Left is better"), ("right", "Right is better"), ("tie", "Tie"), ("both_bad", "Both bad")]
STRENGTH_LABELS = [(1, "Slightly"), (2, "Clearly"), (3, "Much")]
CRITERION_LABELS = [("left", "Left"), ("tie", "Same"), ("right", "Right")]
FLAG_LABELS = {"unsafe": "Unsafe content", "private": "Private information"}


class LabelForm(forms.Form):
    choice = forms.ChoiceField(choices=CHOICE_LABELS, widget=forms.RadioSelect, error_messages={"required": "Pick which response is better (keys 1–4)."})
    strength = forms.TypedChoiceField(choices=STRENGTH_LABELS, coerce=int, initial=2, required=False, empty_value=2, widget=forms.RadioSelect)
    rationale = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why? (optional)"}))
    flags = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    time_on_task_ms = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

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
