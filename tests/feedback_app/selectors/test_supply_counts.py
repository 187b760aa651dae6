"""The open comparisons a campaign holds, counted exactly or up to a cap (the dashboard and the supply ask on every push and round)."""

import pytest

from feedback_app.models import Campaign, Comparison, Prompt
from feedback_app.selectors.dashboard import overview_counters
from feedback_app.selectors.supply import WAITING, open_comparison_count

pytestmark = pytest.mark.django_db


def _mark(comparisons, **fields):
    Comparison.objects.filter(pk__in=[c.pk for c in comparisons]).update(**fields)


def test_a_capped_count_is_the_count_below_the_cap_and_the_cap_above_it(make_comparisons):
    made = make_comparisons(9)
    _mark(made[:2], is_gold=True)  # open gold pairs count
    _mark(made[2:4], status=Comparison.Status.JUDGING)  # waiting for the judge: waiting, not open
    _mark(made[4:5], status=Comparison.Status.COMPLETE)
    other = Campaign.objects.create(slug="other", name="Other")
    Prompt.objects.filter(pk=made[5].prompt_id).update(campaign=other)  # another campaign's
    for statuses in (WAITING, (Comparison.Status.OPEN,), (Comparison.Status.JUDGING,)):
        exact = open_comparison_count(statuses=statuses)
        assert [open_comparison_count(statuses=statuses, cap=cap) for cap in range(1, 9)] == [min(exact, cap) for cap in range(1, 9)]
    assert open_comparison_count() == 7 and open_comparison_count(statuses=(Comparison.Status.OPEN,)) == 5
    assert open_comparison_count(campaign_id=other.pk, cap=5) == 1


def test_the_dashboard_says_when_it_stopped_counting(make_comparisons, monkeypatch):
    from feedback_app.selectors import dashboard

    make_comparisons(3)
    counters = overview_counters()
    assert (counters["open_comparisons"], counters["open_comparisons_more"]) == (3, False)
    monkeypatch.setattr(dashboard, "OPEN_SHOWN_UP_TO", 2)
    counters = overview_counters()
    assert (counters["open_comparisons"], counters["open_comparisons_more"]) == (2, True)


def test_the_dashboard_counts_the_labels_no_reward_version_learned_up_to_its_cap(make_comparisons, make_user, monkeypatch):
    from feedback_app.models import PreferenceLabel
    from feedback_app.selectors import dashboard

    for comparison in make_comparisons(3):
        PreferenceLabel.objects.create(comparison=comparison, rater=make_user(), winner="a")
    counters = overview_counters()
    assert (counters["reward_unlearned"], counters["reward_unlearned_more"]) == (3, False)
    monkeypatch.setattr(dashboard, "OPEN_SHOWN_UP_TO", 2)
    counters = overview_counters()
    assert (counters["reward_unlearned"], counters["reward_unlearned_more"]) == (2, True)
