"""bench/lease_pick: the two slot tests of the pick find the same comparison behind the leases it holds."""

import pytest

from bench.label_profile import fill
from bench.lease_pick import hold, time_picks
from feedback_app.models import Assignment, Comparison

pytestmark = pytest.mark.django_db


def test_the_leases_held_fill_the_head_of_the_queue_and_both_picks_pass_them():
    fill(12)
    hold(3, 0)
    hold(5, 3)
    held = list(Comparison.objects.order_by("id").values_list("leases_held", flat=True))
    assert held == [1] * 5 + [0] * 7
    assert Assignment.objects.filter(status=Assignment.Status.LEASED).count() == 5
    result = time_picks(rounds=4, block=2)
    assert set(result) == {"row_ms", "counted_ms", "counted_over_row"} and result["row_ms"] > 0
