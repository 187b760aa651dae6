"""bench/label_floor: each variant is timed, the stand-ins never reach the service, and the real answer is back after."""

import pytest

from bench.label_floor import VARIANTS, floor
from bench.label_profile import Rater, fill
from feedback_app.api import views
from feedback_app.models import PreferenceLabel

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_floors_are_timed_beside_the_label_and_only_the_label_variant_records_labels():
    rater = Rater(fill(30), combined=True, wsgi=True)
    rater.round()  # holds its next lease from here on
    real = views.label_answer
    labelled = PreferenceLabel.objects.count()
    result = floor(rater, rounds=3, blocks=2)
    assert views.label_answer is real
    assert set(result) == {*VARIANTS, "spread"} and all(result[name] > 0 for name in VARIANTS)
    assert all(low <= result[name] <= high for name, (low, high) in result["spread"].items())
    # the label variant's 2 blocks of 3, and the one label whose answer the stand-ins give
    assert PreferenceLabel.objects.count() == labelled + 2 * 3 + 1


def test_the_real_answer_is_back_in_place_when_a_call_fails(monkeypatch):
    rater = Rater(fill(10), combined=True, wsgi=True)
    rater.round()
    real = views.label_answer
    monkeypatch.setattr(Rater, "call", lambda self, *args: (500, b"{}"))
    with pytest.raises(AssertionError):
        floor(rater, rounds=2, blocks=1)
    assert views.label_answer is real
