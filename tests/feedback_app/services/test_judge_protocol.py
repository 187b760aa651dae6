"""The generative judges' protocol: the rubric from the criteria, the parser, and both orders (a flip abstains)."""

import pytest

from feedback_app.services.judge_protocol import Parsed, answer_parse, both_orders_answers, rubric_messages

CRITERIA = ["helpfulness", "harmlessness", "honesty"]


def test_the_rubric_names_every_criterion_and_shows_the_replies_as_1_and_2():
    messages = rubric_messages(prompt="Where is my parcel?", context=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                               first="On its way.", second="No idea.", criteria=CRITERIA + ["brevity"])
    system, user = messages[0]["content"], messages[1]["content"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert all(name.capitalize() in system for name in CRITERIA + ["brevity"]) and '"better": 1 or 2' in system
    assert user.index("[user] Hi") < user.index("[assistant] Hello") < user.index("Where is my parcel?")
    assert user.index("Response 1:\nOn its way.") < user.index("Response 2:\nNo idea.")


@pytest.mark.parametrize(("text", "parsed"), [
    ('{"better": 1, "confidence": 0.9, "reason": "x"}', Parsed(1, 0.9)),
    ('Sure!\n```json\n{"better": "2", "confidence": 1}\n```', Parsed(2, 1.0)),
    ('I think {"better": 2, "confidence": 0.5} is fair.', Parsed(2, 0.5)),
    ('{"better": 3, "confidence": 0.9}', None),
    ('{"better": true, "confidence": 0.9}', None),
    ('{"better": 1, "confidence": 0.2}', None),
    ('{"better": 1, "confidence": "high"}', None),
    ('{"better": 1}', None),
    ("Response 1 is better.", None),
    ('{"better": 1, "confidence": 0.9', None),
    ("[1, 0.9]", None),
])
def test_the_parser_accepts_only_a_valid_answer(text, parsed):
    assert answer_parse(text) == parsed


def _asker(answers):
    """An ask function answering from a list, in order; an Exception instance stands for a failed request."""
    asked = []

    def ask(questions):
        asked.extend(questions)
        return [answers[len(asked) - len(questions) + k] for k in range(len(questions))]

    return ask, asked


def test_a_verdict_that_holds_in_both_orders_stands_with_the_lower_confidence():
    """Asked (A, B) the judge picks 1, asked (B, A) it picks 2: both say A."""
    ask, asked = _asker(['{"better": 1, "confidence": 0.9}', '{"better": 2, "confidence": 0.8}'])
    (answer,) = both_orders_answers(ask=ask, items=[("p", [], "reply A", "reply B")], criteria=CRITERIA)
    assert answer.choice == "a" and answer.confidence == 0.8 and answer.detail["consistent"]
    assert "Response 1:\nreply A" in asked[0][1]["content"] and "Response 1:\nreply B" in asked[1][1]["content"]


def test_a_verdict_that_flips_with_the_order_is_an_abstention():
    ask, _ = _asker(['{"better": 1, "confidence": 0.9}', '{"better": 1, "confidence": 0.9}'])
    (answer,) = both_orders_answers(ask=ask, items=[("p", [], "a", "b")], criteria=CRITERIA)
    assert answer.choice == "" and answer.reason == "flipped" and answer.detail["consistent"] is False
    assert [o["choice"] for o in answer.detail["orders"]] == ["a", "b"]


def test_an_unparseable_answer_or_a_failed_request_is_an_abstention_that_keeps_what_came_back():
    ask, _ = _asker(['{"better": 2, "confidence": 0.7}', "I cannot decide.", RuntimeError("HTTP 500"), '{"better": 1, "confidence": 1}'])
    unparseable, failed = both_orders_answers(ask=ask, items=[("p", [], "a", "b"), ("q", [], "c", "d")], criteria=CRITERIA)
    assert unparseable.reason == "unparseable" and unparseable.detail["raw"][1] == "I cannot decide." and unparseable.choice == ""
    assert failed.reason == "error" and failed.detail["errors"] == ["HTTP 500"]
