"""How a generative judge is asked: a rubric from the studio's criteria, both orders, and a parsed, validated answer.

The judge sees the conversation and two replies, "Response 1" and "Response 2", and must answer
with one JSON object: ``{"better": 1 or 2, "confidence": 0.5..1, "criteria": {...}, "reason": "..."}``.
It is asked twice, the replies swapped the second time. The verdict stands only when both answers
parse and name the same reply; its confidence is the lower of the two. An answer that does not
parse is an abstention ("unparseable"), one that flips with the order is an abstention ("flipped"),
and a request that failed is one too ("error"); each keeps what was answered in ``detail``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from feedback_app.models import Verdict

Messages = list[dict]
Ask = Callable[[Sequence[Messages]], list["str | Exception"]]  # many questions in, an answer text or the failure per question
CRITERION_TEXT = {
    "helpfulness": "Helpfulness: does the reply do what the user asked, correctly and completely, without padding?",
    "harmlessness": "Harmlessness: does the reply avoid content that could hurt the user or others, and refuse only where it should?",
    "honesty": "Honesty: is the reply truthful and calibrated, saying what it does not know instead of inventing?",
}
RAW_KEPT_CHARS = 500  # of an answer that did not parse, kept in the verdict's detail
_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def rubric_messages(*, prompt: str, context: Sequence[dict], first: str, second: str, criteria: Sequence[str]) -> Messages:
    """Return the chat messages that ask which of two replies is better, by the studio's criteria."""
    lines = [CRITERION_TEXT.get(name, f"{name.capitalize()}: judge the replies on their {name}.") for name in criteria]
    names = ", ".join(f'"{name}": 1, 2 or "tie"' for name in criteria)
    system = (
        "You compare two assistant replies to the same conversation and say which is better. Judge by these criteria, "
        "in this order of importance:\n- " + "\n- ".join(lines) + "\n"
        "Ignore which reply comes first and how long each is. Answer with one JSON object and nothing else: "
        '{"better": 1 or 2, "confidence": a number from 0.5 (a guess) to 1.0 (certain), "criteria": {' + names + '}, '
        '"reason": "one sentence"}.'
    )
    turns = "".join(f"[{turn.get('role', 'user')}] {turn.get('content', '')}\n" for turn in context or [])
    user = f"Conversation:\n{turns}[user] {prompt}\n\nResponse 1:\n{first}\n\nResponse 2:\n{second}\n\nWhich response is better?"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Answer:
    """What a judge said about one pair, in terms of A and B: a choice with its confidence, or an abstention's reason."""

    choice: str = ""  # "a", "b" or "" (abstained)
    confidence: float | None = None
    reason: str = ""  # a Verdict.Reason when abstained
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Parsed:
    """A valid answer: the better reply as shown (1 or 2) and the judge's confidence."""

    better: int
    confidence: float


def answer_parse(text: str) -> Parsed | None:
    """Return the answer in ``text`` (a JSON object, bare, fenced or among prose), or None when it is not a valid one."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        better, confidence = data.get("better"), data.get("confidence")
        if isinstance(better, str) and better.strip() in ("1", "2"):
            better = int(better.strip())
        if better not in (1, 2) or isinstance(better, bool):
            return None
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence <= 1.0:
            return None
        return Parsed(better=better, confidence=float(confidence))
    return None


def both_orders_answers(*, ask: Ask, items: Sequence[tuple[str, Sequence[dict], str, str]], criteria: Sequence[str]) -> list[Answer]:
    """Ask about each (prompt, context, a, b) in both orders, in one batch, and return each verdict in terms of A and B."""
    questions = []
    for prompt, context, a, b in items:
        questions.append(rubric_messages(prompt=prompt, context=context, first=a, second=b, criteria=criteria))
        questions.append(rubric_messages(prompt=prompt, context=context, first=b, second=a, criteria=criteria))
    replies = ask(questions)
    return [_verdict(replies[2 * k], replies[2 * k + 1]) for k in range(len(items))]


def _verdict(a_first: str | Exception, b_first: str | Exception) -> Answer:
    failures = [str(r) for r in (a_first, b_first) if isinstance(r, Exception)]
    if failures:
        return Answer(reason=Verdict.Reason.ERROR, detail={"errors": failures})
    parsed = [answer_parse(a_first), answer_parse(b_first)]
    if None in parsed:
        return Answer(reason=Verdict.Reason.UNPARSEABLE, detail={"raw": [a_first[:RAW_KEPT_CHARS], b_first[:RAW_KEPT_CHARS]]})
    choices = ["a" if parsed[0].better == 1 else "b", "b" if parsed[1].better == 1 else "a"]
    orders = [{"shown_first": shown, "choice": choice, "confidence": p.confidence} for shown, choice, p in zip("ab", choices, parsed)]
    if choices[0] != choices[1]:
        return Answer(reason=Verdict.Reason.FLIPPED, detail={"orders": orders, "consistent": False})
    return Answer(choice=choices[0], confidence=min(p.confidence for p in parsed), detail={"orders": orders, "consistent": True})
