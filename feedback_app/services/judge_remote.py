"""The remote judge's client: an OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp's server, Ollama, TGI).

``POST {JUDGE_URL}/chat/completions`` with the rubric's messages, temperature 0. Each request has
a timeout (JUDGE_TIMEOUT_SECONDS); a timeout, a connection error, a 429 or a 5xx is retried up to
JUDGE_MAX_RETRIES times, after the server's Retry-After when it sends one (capped), else after an
exponential backoff; at most JUDGE_CONCURRENCY requests are in flight. A body that is not the
chat-completions JSON fails that question (the verdict abstains with "error"); the others go on.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
from django.conf import settings

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER_SECONDS = 60.0


class RemoteJudgeError(Exception):
    """A question the endpoint did not answer; the message says why."""


class ChatClient:
    """Ask an OpenAI-compatible endpoint many chat questions, retried and capped; return each answer's text or its failure."""

    def __init__(self, *, base_url: str, api_key: str = "", model: str = "", timeout: float = 60.0, max_retries: int = 3,
                 concurrency: int = 4, max_tokens: int = 256, backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model, self.timeout, self.max_retries = model, timeout, max_retries
        self.concurrency, self.max_tokens, self.backoff, self.sleep = concurrency, max_tokens, backoff, sleep

    @classmethod
    def from_settings(cls) -> ChatClient:
        """Return the client of JUDGE_URL and the JUDGE_* settings."""
        return cls(base_url=settings.JUDGE_URL, api_key=settings.JUDGE_API_KEY, model=settings.JUDGE_REMOTE_MODEL,
                   timeout=settings.JUDGE_TIMEOUT_SECONDS, max_retries=settings.JUDGE_MAX_RETRIES, concurrency=settings.JUDGE_CONCURRENCY,
                   max_tokens=settings.JUDGE_MAX_TOKENS)

    def ask_many(self, questions: Sequence[list[dict]]) -> list[str | Exception]:
        """Return the answer text of each question, or the RemoteJudgeError that ended it, in order."""
        with httpx.Client(timeout=self.timeout, headers=self.headers) as http, ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda messages: self._ask_caught(http, messages), questions))

    def _ask_caught(self, http: httpx.Client, messages: list[dict]) -> str | Exception:
        try:
            return self.ask(http, messages)
        except RemoteJudgeError as exc:
            return exc

    def ask(self, http: httpx.Client, messages: list[dict]) -> str:
        """Return the endpoint's answer to one question, retrying what may pass; raise RemoteJudgeError when it does not."""
        body = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_tokens}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = http.post(self.url, json=body)
            except httpx.TimeoutException:
                if last:
                    raise RemoteJudgeError(f"no answer within {self.timeout:g} s ({attempt + 1} tries)") from None
                self.sleep(self.backoff * 2 ** attempt)
                continue
            except httpx.TransportError as exc:
                if last:
                    raise RemoteJudgeError(f"cannot reach the endpoint: {exc} ({attempt + 1} tries)") from None
                self.sleep(self.backoff * 2 ** attempt)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self.sleep(retry_after_seconds(response.headers.get("retry-after")) or self.backoff * 2 ** attempt)
                continue
            if response.status_code != 200:
                raise RemoteJudgeError(f"HTTP {response.status_code} from the endpoint ({attempt + 1} tries)")
            return _answer_text(response)
        raise AssertionError("unreachable")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the wait a Retry-After header asks for (seconds or an HTTP date), capped at MAX_RETRY_AFTER_SECONDS; None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _answer_text(response: httpx.Response) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise RemoteJudgeError(f"the endpoint's answer is not chat-completions JSON: {response.text[:200]!r}") from None
    if not isinstance(content, str):
        raise RemoteJudgeError("the endpoint's answer has no text content")
    return content
