from collections import Counter

import pytest
import torch
from transformers import GenerationConfig as HFGenerationConfig, LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from rm_trainer.decoding import Sampling, _draw, sample_rows
from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

ROWS = [[1, 60, 61, 62, 2, 1, 70], [1, 80, 81, 2, 1, 90], [1, 100, 101, 102, 103, 104, 2, 1, 110]]  # prompts of three lengths


@pytest.fixture(scope="module")
def model():
    return tiny_llama(extra_rows=3)


def _generate(model, rows, *, stop_ids, max_new_tokens, penalty, suppressed):
    """What ``model.generate`` decodes greedily from the same left-padded rows, each cut after its first stop id."""
    width = max(map(len, rows))
    ids = torch.tensor([[2] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    config = HFGenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=2, eos_token_id=list(stop_ids),
                                suppress_tokens=list(suppressed) or None, repetition_penalty=1.0)
    processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=width)])
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config, logits_processor=processors)[:, width:].tolist()
    return [row[:next((k + 1 for k, t in enumerate(row) if t in stop_ids), len(row))] for row in out]


def test_greedy_rows_that_leave_the_batch_decode_what_generate_decodes(model):
    """Rows end at different steps and leave the batch (its cache rows with them), yet each decodes exactly the tokens that
    ``model.generate``, which keeps every row to the end, decodes: the penalty, the suppressed ids and the stops included."""
    free = _generate(model, ROWS, stop_ids=(), max_new_tokens=10, penalty=1.3, suppressed=(259, 260, 261))
    stop = free[0][3]  # a token row 0 decodes at its fourth step: rows end early, at different steps
    stops = (stop, free[1][6])
    expected = _generate(model, ROWS, stop_ids=stops, max_new_tokens=10, penalty=1.3, suppressed=(259, 260, 261))
    assert sorted(map(len, expected)) != [10, 10, 10]
    batches = []
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: batches.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        got = sample_rows(model, ROWS, 2, Sampling(max_new_tokens=10, stop_ids=stops, temperature=0.0, repetition_penalty=1.3,
                                                   suppressed_ids=(259, 260, 261)))
    finally:
        hook.remove()
    assert got == expected
    assert batches[0] == 3 and batches[-1] < 3 and batches == sorted(batches, reverse=True)  # finished rows were dropped


def test_a_row_without_a_stop_runs_to_the_budget_and_a_stopped_row_keeps_its_stop(model):
    got = sample_rows(model, ROWS, 2, Sampling(max_new_tokens=6, stop_ids=(), temperature=0.0))
    assert [len(row) for row in got] == [6, 6, 6]
    stop = got[1][2]
    ended = sample_rows(model, ROWS, 2, Sampling(max_new_tokens=6, stop_ids=(stop,), temperature=0.0))
    assert ended[1] == got[1][:got[1].index(stop) + 1]


def _draws(logits: list[float], n: int, **sampling) -> Counter:
    torch.manual_seed(0)
    scores = torch.tensor([logits] * n)
    return Counter(_draw(scores, Sampling(max_new_tokens=1, stop_ids=(), **sampling)).tolist())


def test_a_draw_keeps_the_top_k_then_the_smallest_set_that_reaches_top_p():
    probs = torch.tensor([0.05, 0.5, 0.02, 0.3, 0.13])
    logits = probs.log().tolist()
    # top-p 0.7: token 1 (0.5) and token 3 (0.3 more: reaches 0.8) are kept, in the ratio 5 : 3
    nucleus = _draws(logits, 8000, temperature=1.0, top_k=4, top_p=0.7)
    assert set(nucleus) == {1, 3}
    assert abs(nucleus[1] / 8000 - 0.625) < 0.02
    # top-k 3 alone: tokens 1, 3 and 4, renormalised
    best3 = _draws(logits, 8000, temperature=1.0, top_k=3, top_p=1.0)
    assert set(best3) == {1, 3, 4}
    assert abs(best3[4] / 8000 - 0.13 / 0.93) < 0.02
    # no top-k and no top-p: the whole distribution
    assert set(_draws(logits, 8000, temperature=1.0, top_k=0, top_p=1.0)) == {0, 1, 2, 3, 4}
    # no top-k, with a top-p: the same nucleus as above
    assert set(_draws(logits, 2000, temperature=1.0, top_k=0, top_p=0.7)) == {1, 3}


def test_a_lower_temperature_sharpens_and_zero_is_greedy():
    logits = torch.tensor([0.05, 0.5, 0.02, 0.3, 0.13]).log().tolist()
    cold = _draws(logits, 8000, temperature=0.5, top_k=0, top_p=1.0)
    assert abs(cold[1] / 8000 - 0.25 / 0.3623) < 0.02  # p^2 renormalised: 0.5^2 / (sum of the squares)
    assert _draws(logits, 50, temperature=0.0) == Counter({1: 50})


def test_suppressed_ids_are_never_drawn(model):
    tokenizer = tiny_tokenizer()
    suppressed = tuple(range(3, 259))  # every byte: only the three special ids and the unused rows are left
    got = sample_rows(model, ROWS, tokenizer.pad_token_id, Sampling(max_new_tokens=5, stop_ids=(), temperature=1.0, top_k=0,
                                                                    suppressed_ids=suppressed))
    assert all(token not in suppressed for row in got for token in row)
