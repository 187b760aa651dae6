"""The reply-length benchmark's helpers: the Bitext requests it draws and the share of shown replies cut off."""

import pytest

from bench.reply_lengths import bitext_requests, shown_truncated_share


def test_shown_share_counts_nothing_when_two_candidates_are_complete():
    """The supply picks two complete candidates, so no shown reply is cut off."""
    assert shown_truncated_share([[True, False, True, False], [False, False]]) == 0.0


def test_shown_share_falls_back_to_a_random_pair_of_all():
    """One complete of four: a random pair shows 2 * 3/4 cut-off replies in expectation, of 2 shown."""
    assert shown_truncated_share([[True, True, True, False]]) == pytest.approx(0.75)
    assert shown_truncated_share([[True, True, True, False], [False, False]]) == pytest.approx(0.375)


def test_prompts_with_fewer_than_two_candidates_show_nothing():
    assert shown_truncated_share([[True], []]) == 0.0


def test_bitext_requests_are_distinct_and_seeded(tmp_path):
    path = tmp_path / "sample.csv"
    path.write_text("instruction,intent,response\nwhere is it,track,here\nwhere is it,track,there\nrefund?,refund,yes\n  ,x,y\nhi,greet,hello\n")
    first = bitext_requests(path, 2, seed=0)
    assert len(first) == len(set(first)) == 2 and set(first) <= {"where is it", "refund?", "hi"}
    assert bitext_requests(path, 2, seed=0) == first
    assert sorted(bitext_requests(path, 10, seed=1)) == ["hi", "refund?", "where is it"]
