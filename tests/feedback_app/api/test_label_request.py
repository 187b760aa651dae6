"""The label request's two readings: a plain label read directly, everything else by the serializer, with one result."""

import itertools
import random

import pytest
from rest_framework.exceptions import ValidationError

from feedback_app.api.serializers import LabelRequestSerializer, plain_label
from feedback_app.models import Campaign

CAMPAIGN = Campaign(slug="c", name="C", criteria=["helpfulness", "tone"], flags=["unsafe", "off_topic"])

VALUES = {  # per field: values a client may send, good and bad; ABSENT leaves the field out
    "choice": ["left", "right", "tie", "both_bad", "a", "", None, 1, ["left"], "LEFT", " left"],
    "strength": [1, 2, 3, 0, 4, 2.0, 2.5, True, "2", None, -1],
    "criteria": [{}, {"tone": "left"}, {"nope": "left"}, {"tone": "up"}, [], None, ""],
    "rationale": ["", "  ", "why", " why ", "x" * 5001, "a\x00b", None, 3, []],
    "flags": [[], ["unsafe"], ["unsafe", "unsafe"], ["nope"], "unsafe", None, [1], {}],
    "edited_text": ["", " ", "better", None, 1],
    "edited_from": ["", "left", "right", "up", None],
    "time_on_task_ms": [None, 0, 1234, -1, 2**31 - 1, 2**31, 12.0, 1.5, True, "1200", []],
}
ABSENT = object()


def _serializer_reading(data):
    serializer = LabelRequestSerializer(data=data, context={"campaign": CAMPAIGN})
    if not serializer.is_valid():
        return "invalid", serializer.errors
    return "valid", serializer.submission()


def _requests(count: int, seed: int, first: int | None = None):
    """Random requests; with ``first``, each field from its first values only (mostly good ones)."""
    rng = random.Random(seed)
    for _ in range(count):
        data = {}
        for name, values in VALUES.items():
            value = rng.choice([*values[:first], ABSENT, ABSENT])
            if value is not ABSENT:
                data[name] = value
        yield data


def test_a_plain_label_is_read_as_the_serializer_reads_it():
    requests = [
        *_requests(3000, seed=0),
        *_requests(1000, seed=1, first=2),
        *({"choice": choice, "strength": strength} for choice, strength in itertools.product(VALUES["choice"], VALUES["strength"])),
        {"choice": "left", "unknown": 1}, [], "left", None, {},
    ]
    short = 0
    for data in requests:
        plain = plain_label(data, campaign=CAMPAIGN)
        outcome, read = _serializer_reading(data)
        if plain is not None:
            short += 1
            assert outcome == "valid", (data, read)
            assert plain == read and plain.campaign is CAMPAIGN, data
    assert short >= 40  # both readings were tried: 4 sides x 3 strengths, and the random plain ones


def test_the_plain_labels_raters_send_take_the_short_reading():
    for data in [{"choice": "left"}, {"choice": "both_bad", "strength": 3, "time_on_task_ms": 900},
                 {"choice": "tie", "criteria": {}, "rationale": "", "flags": [], "edited_text": "", "edited_from": "", "time_on_task_ms": None}]:
        assert plain_label(data, campaign=CAMPAIGN) is not None, data


def test_read_names_the_field_at_fault_whichever_reading_takes_it():
    assert LabelRequestSerializer.read({"choice": "left", "strength": 3}, campaign=CAMPAIGN).strength == 3
    with pytest.raises(ValidationError) as refused:
        LabelRequestSerializer.read({"choice": "left", "strength": 7}, campaign=CAMPAIGN)
    assert set(refused.value.detail) == {"strength"}
    with pytest.raises(ValidationError) as refused:
        LabelRequestSerializer.read({"choice": "left", "flags": ["nope"]}, campaign=CAMPAIGN)
    assert set(refused.value.detail) == {"flags"}
