"""The latency bench's side-by-side figure: rounds before a DPO run against rounds during it, from one run."""

from bench.loop_latency import side_by_side


def test_side_by_side_compares_the_medians_of_rounds_before_and_during_the_dpo_run():
    rounds = [{"seconds_label_to_serving": 20.0}, {"seconds_label_to_serving": 22.0}, {"seconds_label_to_serving": 90.0},
              {"seconds_label_to_serving": 30.0, "during_dpo": True}, {"seconds_label_to_serving": 33.0, "during_dpo": True},
              {"seconds_label_to_serving": 99.0, "during_dpo": False}]  # a round the DPO run did not span counts as neither
    assert side_by_side(rounds) == {"median_without_dpo": 22.0, "median_during_dpo": 31.5, "ratio": 1.43, "rounds": [3, 2]}


def test_without_rounds_on_both_sides_there_is_no_ratio():
    assert side_by_side([{"seconds_label_to_serving": 20.0}]) is None
    assert side_by_side([{"seconds_label_to_serving": 20.0, "during_dpo": True}]) is None
