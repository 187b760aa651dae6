"""The reply-length benchmark's helpers: the Bitext requests it draws and the share of shown replies cut off."""

import pytest

from bench.reply_lengths import at_budget, batch_steps, bitext_requests, shown_truncated_share


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


def test_one_run_at_the_largest_budget_tells_what_a_smaller_one_cuts_off():
    """With one seed, a run at 24 tokens marks exactly the replies that a run at 6 tokens cuts off."""
    from rm_trainer.config import GenerationConfig
    from rm_trainer.generator import Generator
    from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

    tiny = Generator(tiny_llama(), tiny_tokenizer(), device="cpu", bf16=False)
    prompts = ["Hi", "Where is my parcel?", "Refund?"]
    config = GenerationConfig(max_new_tokens=24, temperature=1.0, top_p=1.0, top_k=0, system_prompt="", batch_size=4)
    long = tiny.generate_with_stats(prompts, 3, config)
    short = tiny.generate_with_stats(prompts, 3, GenerationConfig(**{**config.__dict__, "max_new_tokens": 6}))
    assert at_budget(long.raw_lengths, long.raw_truncated, 24, 6) == short.raw_truncated
    assert at_budget(long.raw_lengths, long.raw_truncated, 24, 24) == long.raw_truncated
    with pytest.raises(ValueError):
        at_budget(long.raw_lengths, long.raw_truncated, 24, 48)


def test_a_batch_runs_until_its_longest_row_stops_or_the_budget():
    assert batch_steps([3, 10, 5, 2], batch_size=2, budget=8) == 8 + 5
    assert batch_steps([3, 10, 5, 2], batch_size=4, budget=64) == 10
