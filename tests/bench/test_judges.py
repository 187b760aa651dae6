"""The Bitext judge: its interface, its rubric, its calibrated noise and the --judge loader."""

from __future__ import annotations

import csv
import random
import sys
import types

import pytest

from bench import judges
from bench.judges import BitextJudge, JudgeLoadError, calibrate_temperature, expected_self_agreement, load_judge

# Synthetic references written for these tests (no text of the real data set).
ROWS = [
    ("How do I reset my password?", "recover_password",
     "To reset your password, open the sign-in page, choose Forgot password, enter your email address and follow "
     "the link we send you. The link stays valid for one hour. If it does not arrive, check your spam folder."),
    ("I forgot my login password", "recover_password",
     "No problem. Open the sign-in page, choose Forgot password and enter your email address. We will email you "
     "a link to choose a new password."),
    ("Where is my parcel?", "track_order",
     "You can follow your parcel on the Orders page: select the order and press Track to see where it is and "
     "when it should arrive."),
]
PROMPT = ROWS[0][0]
GOOD = ("To reset your password, open the sign-in page and choose Forgot password. Enter your email address and "
        "follow the link we send you; check your spam folder if it does not arrive.")
UNRELATED = "Our summer sale starts on Friday with discounts on garden furniture and outdoor lights for everyone."


@pytest.fixture
def judge(tmp_path) -> BitextJudge:
    path = tmp_path / "bitext.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["instruction", "intent", "category", "response"])
        writer.writerows([(q, intent, "ACCOUNT", reply) for q, intent, reply in ROWS])
    return BitextJudge(path)


def test_the_judge_returns_a_choice_and_a_strength(judge):
    """Every call returns one of the four choices and an int strength from 1 to 3."""
    rng = random.Random(0)
    for reply_a, reply_b in [(GOOD, UNRELATED), (UNRELATED, GOOD), (GOOD, GOOD), ("", ""), ("I cannot help.", GOOD)]:
        choice, strength = judge(PROMPT, reply_a, reply_b, rng)
        assert choice in ("a", "b", "tie", "both_bad")
        assert isinstance(strength, int) and 1 <= strength <= 3


def test_a_reference_like_reply_beats_an_unrelated_one_noiselessly(judge):
    """The noiseless preference follows overlap with the request's reference, whichever side it is on."""
    assert judge.score(PROMPT, GOOD) > judge.score(PROMPT, UNRELATED)
    assert judge.preference(PROMPT, GOOD, UNRELATED) == "a"
    assert judge.preference(PROMPT, UNRELATED, GOOD) == "b"
    assert judge.preference(PROMPT, GOOD, GOOD) == "tie"


def test_a_request_not_in_the_data_uses_its_nearest_request(judge):
    """A reworded request is judged against the reference of the closest known request."""
    assert judge.preference("how can I reset my password please", GOOD, UNRELATED) == "a"


def test_a_reply_cut_off_mid_sentence_scores_lower(judge):
    """Stopping without a sentence end (as at a token budget) costs score."""
    cut = GOOD.rsplit(";", 1)[0] + "; check your spam"
    assert judges.is_cut_off(cut) and not judges.is_cut_off(GOOD)
    assert judge.features(PROMPT, cut)["cut_off"] == 1.0
    assert judge.score(PROMPT, cut) < judge.score(PROMPT, GOOD) * 0.7


def test_a_reply_that_repeats_itself_scores_lower(judge):
    """Repeated word 3-grams cut the score, down to 0 when half the n-grams repeat."""
    looping = GOOD + " " + " ".join(["Choose Forgot password and enter your email."] * 4)
    assert judge.features(PROMPT, looping)["repetition"] > 0.3
    assert judge.score(PROMPT, looping) < judge.score(PROMPT, GOOD) * 0.5


def test_a_refusal_or_an_empty_reply_scores_lower(judge):
    """Refusal phrases cost most of the score; an empty reply scores 0 and two bad replies are both_bad."""
    refusal = "As an AI, I cannot reset your password. Open the sign-in page and choose Forgot password."
    assert judges.refuses(refusal) and not judges.refuses(GOOD)
    assert judge.score(PROMPT, refusal) < judge.score(PROMPT, GOOD) * 0.3
    assert judge.score(PROMPT, "") == 0.0 and judge.score(PROMPT, "   ") == 0.0
    assert judge(PROMPT, "", "", random.Random(0)) == ("both_bad", 1)


def test_a_large_margin_gives_a_strong_choice(judge):
    """The strength grows with the margin: a reference-like reply against an empty one is 'much better' (3)."""
    draws = [judge(PROMPT, GOOD, "", random.Random(seed)) for seed in range(20)]
    assert all(d == ("a", 3) for d in draws)


def test_the_calibrated_noise_gives_human_like_self_agreement(judge):
    """On a fixed synthetic set, the temperature calibrated to 72.5% gives two draws agreeing on 65–80% of pairs."""
    rng = random.Random(1234)
    pairs = [(rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4)) for _ in range(400)]
    judge.temperature = calibrate_temperature(judge, pairs, target=0.725)
    assert expected_self_agreement(judge, pairs) == pytest.approx(0.725, abs=0.005)
    draws = random.Random(7)

    def two_draws_agree(a: float, b: float) -> bool:
        probs = judge.probabilities(a, b)
        names = list(probs)
        first, second = draws.choices(names, weights=list(probs.values()), k=2)
        return first == second

    agreement = sum(two_draws_agree(a, b) for a, b in pairs) / len(pairs)
    assert 0.65 <= agreement <= 0.8


def test_the_draws_follow_the_score_more_often_than_not(judge):
    """Noisy draws side with the higher score most of the time, but not always when the scores are close."""
    close = GOOD.replace("; check your spam folder if it does not arrive", "")
    rng = random.Random(3)
    judge.temperature = 0.05
    better, worse = ("a", "b") if judge.score(PROMPT, GOOD) > judge.score(PROMPT, close) else ("b", "a")
    choices = [judge(PROMPT, GOOD, close, rng)[0] for _ in range(400)]
    assert choices.count(better) > choices.count(worse) > 0


def test_load_judge_returns_the_named_callable():
    """'bench.judges:judge' loads the default judge; a module on sys.path loads its callable."""
    loaded = load_judge("bench.judges:judge")
    assert loaded.wrapped is judges.judge
    module = types.ModuleType("fake_judges_for_test")
    module.always_a = lambda prompt, a, b, rng: ("a", 2)
    module.broken = lambda prompt, a, b, rng: ("maybe", 5)
    module.not_callable = 42
    sys.modules[module.__name__] = module
    try:
        assert load_judge("fake_judges_for_test:always_a")("p", "x", "y", random.Random(0)) == ("a", 2)
        with pytest.raises(JudgeLoadError, match="returned"):
            load_judge("fake_judges_for_test:broken")("p", "x", "y", random.Random(0))
        with pytest.raises(JudgeLoadError, match="not a callable"):
            load_judge("fake_judges_for_test:not_callable")
        with pytest.raises(JudgeLoadError, match="no attribute 'missing'"):
            load_judge("fake_judges_for_test:missing")
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize("spec, message", [
    ("bench.judges", "expects 'module:callable'"),
    (":judge", "expects 'module:callable'"),
    ("no_such_module_xyz:judge", "cannot import module 'no_such_module_xyz'"),
])
def test_load_judge_errors_name_the_problem(spec, message):
    """A malformed spec or a missing module is refused with a message that says which."""
    with pytest.raises(JudgeLoadError, match=message):
        load_judge(spec)
