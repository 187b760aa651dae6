"""bench/lease_pick: the two slot tests of the pick find the same comparison behind the leases it holds."""

import pytest
from django.conf import settings
from django.db import connection

from bench.label_profile import fill
from bench.lease_pick import PICKER, give_history, hold, main, time_history, time_picks, time_under_snapshot
from feedback_app.models import Assignment, Comparison
from feedback_app.selectors.dashboard import OPEN_SHOWN_UP_TO

pytestmark = pytest.mark.django_db


def test_the_leases_held_fill_the_head_of_the_queue_and_both_picks_pass_them():
    fill(12, PICKER)
    hold(3, 0)
    hold(5, 3)
    held = list(Comparison.objects.order_by("id").values_list("leases_held", flat=True))
    assert held == [1] * 5 + [0] * 7
    assert Assignment.objects.filter(status=Assignment.Status.LEASED).count() == 5
    result = time_picks(rounds=4, block=2)
    assert set(result) == {"row_ms", "counted_ms", "counted_over_row"} and result["row_ms"] > 0


def test_a_rater_with_a_history_picks_the_same_comparison_as_one_without():
    fill(12, PICKER)
    give_history(4)
    assert list(Comparison.objects.order_by("id").values_list("status", flat=True)) == ["complete"] * 4 + ["open"] * 8
    assert Assignment.objects.filter(rater__username="pick-history", status=Assignment.Status.SUBMITTED).count() == 4
    hold(2, 0)  # the two open comparisons after the history
    result = time_history(rounds=4, block=2)
    assert set(result) == {"history_ms", "none_ms", "history_over_none"} and result["history_ms"] > 0


def test_history_and_leases_held_need_more_comparisons_than_their_sum(capsys):
    with pytest.raises(SystemExit):
        main(["--history", "100", "--held", "50", "--comparisons", "120"])
    assert "need more --comparisons" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)  # on PostgreSQL the scenario ends with a VACUUM, which no transaction may hold
def test_picks_are_timed_while_another_session_holds_a_snapshot_and_after_it_lets_go():
    fill(12, PICKER)
    rows = time_under_snapshot([2, 5], rounds=2, block=1)
    vacuumed = [(5, False)] if connection.vendor == "postgresql" else []
    assert [(row["completed"], row["snapshot_held"]) for row in rows] == [(0, True), (2, True), (5, True), (5, False), (5, False), *vacuumed]
    assert [bool(row.get("written")) for row in rows[3:5]] == [False, True]
    assert all(row["pick_ms"] > 0 and row["supply_count_ms"] > 0 and row["dashboard_count_ms"] > 0 for row in rows)
    assert list(Comparison.objects.order_by("id").values_list("status", flat=True)) == ["complete"] * 5 + ["open"] * 7


def test_the_open_counts_timed_are_the_supplys_and_the_dashboards(monkeypatch):
    from bench import lease_pick
    from feedback_app.selectors import supply

    asked = []
    monkeypatch.setattr(supply, "open_comparison_count", lambda **kwargs: asked.append(kwargs) or 0)
    result = lease_pick.time_counts(repeat=2)
    assert set(result) == {"supply_count_ms", "dashboard_count_ms"}
    assert [call.get("statuses") for call in asked] == [None, None, ("open",), ("open",)]
    assert [call["cap"] for call in asked] == [settings.SUPPLY_OPEN_TARGET] * 2 + [OPEN_SHOWN_UP_TO] * 2


@pytest.mark.parametrize("steps", ["5,2", "0,4", "two"])
def test_snapshot_steps_that_do_not_rise_are_refused_naming_the_flag(capsys, steps):
    with pytest.raises(SystemExit):
        main(["--snapshot", steps])
    assert "--snapshot takes" in capsys.readouterr().err
