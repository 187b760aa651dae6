"""Preference judges the studio never sees: Bitext reference overlap with rubric penalties, noisy like people.

A judge is any callable ``judge(prompt: str, reply_a: str, reply_b: str, rng: random.Random)
-> tuple[str, int]`` returning a choice in ``"a" | "b" | "tie" | "both_bad"`` and a strength 1–3
(1 slightly, 2 clearly, 3 much better). ``load_judge("module:callable")`` finds one on
``PYTHONPATH`` for ``--judge``; ``bench.judges:judge`` is the default.

The default, ``BitextJudge``, reads the Bitext customer-service sample (``../shared/data``) into
its own process at run time; nothing of it reaches the studio. A reply's score in [0, 1]:

    overlap = 0.75 · (½ token F1 + ½ ROUGE-L F) with the reference reply of the same request
            + 0.25 · the best token F1 with other references of the same intent
    score   = overlap × 0.6 if cut off (no sentence end: the reply stopped mid-sentence, e.g. at
              a token budget) × max(0, 1 − 2·r) for r the share of repeated word 3-grams
              × 0.25 if it refuses ("I cannot", "as an AI", ...) × min(1, words / 8); empty: 0.

Token F1 counts content words (a short stop list removed); ROUGE-L is the longest common
subsequence of all words. ``{{Placeholders}}`` of the references are dropped. A request not in
the file takes the references of its nearest instruction (word Jaccard). No learned model is used.

Choices are Bradley–Terry draws from the score difference: P(a) = σ((s_a − s_b) / T). The
temperature ``T`` was calibrated on real base-policy candidate pairs so that two draws on the
same pair agree on about 72% of pairs (``bench/README.md``; ``calibrate_temperature`` refits it).
Both scores below ``bad_floor``: "both_bad". Scores within ``tie_band`` of each other: "tie" half
the time (rare). Strength grows with |s_a − s_b| / T when the draw follows the score, else 1.
``preference`` is the noiseless choice (the sign of the difference), for agreement figures.
"""

from __future__ import annotations

import csv
import importlib
import math
import os
import random
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Callable

Judge = Callable[[str, str, str, random.Random], tuple[str, int]]
CHOICES = ("a", "b", "tie", "both_bad")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bitext-customer-support" / "customer_support_sample.csv"
DEFAULT_TEMPERATURE = 0.0251  # calibrated to 72.5% on 960 real candidate pairs of the studio's 192-token replies (bench/README.md)
STOPWORDS = frozenset(
    "a an the and or but if of to in on at for with by from as is are was were be been being it its this that "
    "these those i you your we our us me my he she they them their there here do does did have has had will would "
    "can could should may might must so not no yes please thank thanks any all some just also very about into out "
    "up what which who how when where than then too s t ll re ve d m".split()
)
REFUSALS = (
    "i cannot", "i can't", "i can not", "as an ai", "i am an ai", "i'm an ai", "language model", "i am unable to",
    "i'm unable to", "i am not able to", "i'm not able to", "i won't be able", "i'm sorry, but i", "i do not have access",
    "i don't have access",
)
SENTENCE_END = re.compile(r"""[.!?…)"'»\]]\s*$|[\U0001F300-\U0001FAFF]\s*$""")
PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class JudgeLoadError(ValueError):
    """A ``--judge`` value that does not name a usable judge callable."""


def words(text: str) -> list[str]:
    """Return the lower-cased words of a text, placeholders dropped."""
    return WORD.findall(PLACEHOLDER.sub(" ", text).lower())


def token_f1(candidate: list[str], reference: list[str]) -> float:
    """Return the F1 of the content words (multiset overlap) of two word lists."""
    cand = Counter(w for w in candidate if w not in STOPWORDS)
    ref = Counter(w for w in reference if w not in STOPWORDS)
    common = sum((cand & ref).values())
    if not common:
        return 0.0
    precision, recall = common / sum(cand.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def rouge_l(candidate: list[str], reference: list[str]) -> float:
    """Return the ROUGE-L F-measure (longest common subsequence) of two word lists."""
    if not candidate or not reference:
        return 0.0
    previous = [0] * (len(reference) + 1)
    for word in candidate:
        current = [0]
        for j, ref_word in enumerate(reference):
            current.append(previous[j] + 1 if word == ref_word else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def repetition(tokens: list[str], n: int = 3) -> float:
    """Return the share of a word list's n-grams that repeat an earlier one (0 without n-grams)."""
    grams = [tuple(tokens[k : k + n]) for k in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def is_cut_off(text: str) -> bool:
    """Return whether a non-empty reply ends without a sentence end (stopped mid-sentence)."""
    return bool(text.strip()) and not SENTENCE_END.search(text.strip())


def refuses(text: str) -> bool:
    """Return whether a reply contains a refusal phrase."""
    lowered = text.lower().replace("’", "'")
    return any(phrase in lowered for phrase in REFUSALS)


class BitextReferences:
    """The Bitext reference replies, by request and by intent (read into this process only)."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_DATA, intent_references: int = 6) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"the judge's reference data is missing: {path}")
        self.by_request: dict[str, tuple[str, list[str]]] = {}
        self.by_intent: dict[str, list[list[str]]] = {}
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                request, intent, reply = row["instruction"].strip(), row["intent"].strip(), words(row["response"])
                self.by_request.setdefault(request, (intent, reply))
                self.by_intent.setdefault(intent, []).append(reply)
        self.intent_references = intent_references
        self._request_words = {request: set(words(request)) for request in self.by_request}

    def lookup(self, prompt: str) -> tuple[list[str], list[list[str]]]:
        """Return (the request's reference reply, other references of its intent) as word lists."""
        request = prompt.strip()
        if request not in self.by_request:
            asked = set(words(request))
            request = max(self._request_words, key=lambda r: _jaccard(asked, self._request_words[r]))
        intent, reference = self.by_request[request]
        others = [r for r in self.by_intent[intent] if r is not reference][: self.intent_references]
        return reference, others


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


class BitextJudge:
    """Score replies against Bitext's reference for the same request; choose noisily (module docstring)."""

    def __init__(self, data: str | os.PathLike[str] = DEFAULT_DATA, *, temperature: float = DEFAULT_TEMPERATURE,
                 tie_band: float = 0.001, bad_floor: float = 0.02, strength_steps: tuple[float, float] = (1.0, 2.5)) -> None:
        self.references = BitextReferences(data)
        self.temperature, self.tie_band, self.bad_floor, self.strength_steps = temperature, tie_band, bad_floor, strength_steps
        self.features = lru_cache(maxsize=65536)(self._features)

    def _features(self, prompt: str, reply: str) -> dict[str, float]:
        tokens = words(reply)
        if not reply.strip() or not tokens:
            return {"overlap": 0.0, "cut_off": 0.0, "repetition": 0.0, "refusal": 0.0, "words": 0.0, "empty": 1.0, "score": 0.0}
        reference, others = self.references.lookup(prompt)
        own = 0.5 * token_f1(tokens, reference) + 0.5 * rouge_l(tokens, reference)
        intent = max((token_f1(tokens, other) for other in others), default=own)
        overlap = 0.75 * own + 0.25 * intent
        cut, rep, refusal = is_cut_off(reply), repetition(tokens), refuses(reply)
        score = overlap * (0.6 if cut else 1.0) * max(0.0, 1.0 - 2.0 * rep) * (0.25 if refusal else 1.0) * min(1.0, len(tokens) / 8)
        return {"overlap": overlap, "cut_off": float(cut), "repetition": rep, "refusal": float(refusal),
                "words": float(len(tokens)), "empty": 0.0, "score": score}

    def score(self, prompt: str, reply: str) -> float:
        """Return the reply's score in [0, 1] (higher is better)."""
        return self.features(prompt, reply)["score"]

    def preference(self, prompt: str, reply_a: str, reply_b: str) -> str:
        """Return the noiseless choice: "a" or "b" by the sign of the score difference, "tie" when equal."""
        diff = self.score(prompt, reply_a) - self.score(prompt, reply_b)
        return "a" if diff > 0 else "b" if diff < 0 else "tie"

    def probabilities(self, score_a: float, score_b: float) -> dict[str, float]:
        """Return the probability of each choice for two scores."""
        if max(score_a, score_b) < self.bad_floor:
            return {"a": 0.0, "b": 0.0, "tie": 0.0, "both_bad": 1.0}
        p_a = 1.0 / (1.0 + math.exp(-(score_a - score_b) / self.temperature))
        tie = 0.5 if abs(score_a - score_b) < self.tie_band else 0.0
        return {"a": (1 - tie) * p_a, "b": (1 - tie) * (1 - p_a), "tie": tie, "both_bad": 0.0}

    def __call__(self, prompt: str, reply_a: str, reply_b: str, rng: random.Random) -> tuple[str, int]:
        """Return a noisy (choice, strength) for the pair."""
        score_a, score_b = self.score(prompt, reply_a), self.score(prompt, reply_b)
        probs = self.probabilities(score_a, score_b)
        u, choice = rng.random(), "both_bad"
        for name in CHOICES:
            u -= probs[name]
            if u < 0:
                choice = name
                break
        if choice in ("tie", "both_bad"):
            return choice, 1
        margin = (score_a - score_b) / self.temperature * (1 if choice == "a" else -1)
        return choice, 1 if margin < self.strength_steps[0] else 2 if margin < self.strength_steps[1] else 3


def expected_self_agreement(judge: BitextJudge, score_pairs: list[tuple[float, float]]) -> float:
    """Return the mean probability that two independent draws give the same choice, over the pairs."""
    if not score_pairs:
        raise ValueError("no pairs")
    return sum(sum(p * p for p in judge.probabilities(a, b).values()) for a, b in score_pairs) / len(score_pairs)


def calibrate_temperature(judge: BitextJudge, score_pairs: list[tuple[float, float]], target: float = 0.725) -> float:
    """Return the temperature whose expected self-agreement on the pairs is ``target`` (bisection in log T)."""
    low, high = 1e-5, 10.0
    saved = judge.temperature
    try:
        for _ in range(60):
            judge.temperature = math.sqrt(low * high)
            if expected_self_agreement(judge, score_pairs) > target:
                low = judge.temperature  # too consistent: more noise
            else:
                high = judge.temperature
        return math.sqrt(low * high)
    finally:
        judge.temperature = saved


def measured_self_agreement(judge: Judge, pairs: list[tuple[str, str, str]], rng: random.Random) -> float:
    """Return the share of (prompt, a, b) pairs on which two draws of the judge give the same choice."""
    if not pairs:
        raise ValueError("no pairs")
    return sum(judge(p, a, b, rng)[0] == judge(p, a, b, rng)[0] for p, a, b in pairs) / len(pairs)


@lru_cache(maxsize=1)
def default_judge() -> BitextJudge:
    """Return the process's default Bitext judge (read on first use)."""
    return BitextJudge(os.environ.get("BITEXT_JUDGE_DATA", DEFAULT_DATA))


def judge(prompt: str, reply_a: str, reply_b: str, rng: random.Random) -> tuple[str, int]:
    """The default judge (``--judge bench.judges:judge``): see ``BitextJudge``."""
    return default_judge()(prompt, reply_a, reply_b, rng)


def noiseless(judge: Callable) -> Callable[[str, str, str], str]:
    """Return the judge's noiseless preference: its ``preference`` if it has one, else the majority of 15 draws."""
    target = getattr(judge, "wrapped", judge)
    if hasattr(target, "preference"):
        return target.preference
    if getattr(target, "__module__", None) == "bench.judges" and getattr(target, "__name__", None) == "judge":
        return default_judge().preference

    def majority(prompt: str, a: str, b: str) -> str:
        rng = random.Random(0)
        votes = [judge(prompt, a, b, rng)[0] for _ in range(15)]
        wins_a, wins_b = votes.count("a"), votes.count("b")
        return "a" if wins_a > wins_b else "b" if wins_b > wins_a else "tie"

    return majority


def load_judge(spec: str) -> Judge:
    """Return the callable named by ``"module:callable"`` (the module found on PYTHONPATH), checked on each call."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise JudgeLoadError(f"--judge expects 'module:callable' (e.g. bench.judges:judge), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise JudgeLoadError(f"--judge {spec!r}: cannot import module {module_name!r} ({error}); is it on PYTHONPATH?") from error
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise JudgeLoadError(f"--judge {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise JudgeLoadError(f"--judge {spec!r}: {attribute!r} is a {type(target).__name__}, not a callable")
    return _checked(target, spec)


def _checked(function: Callable, spec: str) -> Judge:
    def checked(prompt: str, reply_a: str, reply_b: str, rng: random.Random) -> tuple[str, int]:
        result = function(prompt, reply_a, reply_b, rng)
        if not (isinstance(result, tuple) and len(result) == 2 and result[0] in CHOICES
                and isinstance(result[1], int) and 1 <= result[1] <= 3):
            raise JudgeLoadError(f"judge {spec!r} returned {result!r}; expected (one of {CHOICES}, strength 1-3)")
        return result

    checked.wrapped = function
    return checked
