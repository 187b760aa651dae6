"""The remote judge's client against a stub OpenAI-compatible server on 127.0.0.1: answers, timeouts, 429 with Retry-After,
server errors, malformed JSON, the concurrency cap; and a remote routing judge end to end."""

import json
import threading
import time
from datetime import datetime, timedelta, timezone as dt_timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from feedback_app.models import Comparison, Judge, PreferenceLabel, Verdict
from feedback_app.services.ai_routing import comparisons_judge_and_route
from feedback_app.services.judge_remote import MAX_RETRY_AFTER_SECONDS, ChatClient, RemoteJudgeError, retry_after_seconds
from feedback_app.services.judges import judge_remote_enable

STUB_LIFETIME_SECONDS = 60  # the server shuts itself down after this, whatever the test does


def completion(content: str) -> dict:
    return {"status": 200, "body": json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})}


class Stub:
    """A chat-completions server: each request takes the next scripted reply (the last one repeats) and is recorded."""

    def __init__(self, replies: list[dict]):
        self.replies, self.requests, self.in_flight, self.max_in_flight = list(replies), [], 0, 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                    reply = stub.replies.pop(0) if len(stub.replies) > 1 else stub.replies[0]
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    time.sleep(reply.get("delay", 0))
                finally:
                    # Out of flight before the answer is written: once a client reads it, it may post the next question.
                    with stub.lock:
                        stub.in_flight -= 1
                try:
                    self.send_response(reply.get("status", 200))
                    for name, value in reply.get("headers", {}).items():
                        self.send_header(name, value)
                    data = reply.get("body", "").encode()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.watchdog = threading.Timer(STUB_LIFETIME_SECONDS, self.server.shutdown)

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        self.watchdog.cancel()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    stubs = []

    def start(replies):
        stubs.append(Stub(replies).__enter__())
        return stubs[-1]

    yield start
    for s in stubs:
        s.__exit__(None, None, None)


def client(url, **options) -> tuple[ChatClient, list[float]]:
    waits = []
    defaults = {"timeout": 2.0, "max_retries": 2, "concurrency": 2, "backoff": 0.01}
    return ChatClient(base_url=url, api_key="sk-test", model="judge-7b", sleep=waits.append, **{**defaults, **options}), waits


QUESTION = [{"role": "user", "content": "Which is better?"}]


def test_a_question_is_posted_as_chat_completions_with_the_key_and_its_answer_returned(stub):
    server = stub([completion('{"better": 1, "confidence": 0.9}')])
    chat, waits = client(server.url)
    assert chat.ask_many([QUESTION]) == ['{"better": 1, "confidence": 0.9}'] and waits == []
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "judge-7b" and request["body"]["messages"] == QUESTION and request["body"]["temperature"] == 0


def test_a_429_waits_as_long_as_retry_after_says_then_retries(stub):
    server = stub([{"status": 429, "headers": {"Retry-After": "3"}, "body": "slow down"}, completion("ok")])
    chat, waits = client(server.url)
    assert chat.ask_many([QUESTION]) == ["ok"] and waits == [3.0] and len(server.requests) == 2


def test_server_errors_back_off_exponentially_and_fail_after_the_retries(stub):
    server = stub([{"status": 503, "body": "busy"}])
    chat, waits = client(server.url, max_retries=3, backoff=0.5)
    (failure,) = chat.ask_many([QUESTION])
    assert isinstance(failure, RemoteJudgeError) and "HTTP 503" in str(failure) and waits == [0.5, 1.0, 2.0] and len(server.requests) == 4


def test_a_timeout_is_retried_then_reported(stub):
    server = stub([{"delay": 1.0, **completion("late")}, completion("in time")])
    chat, waits = client(server.url, timeout=0.3)
    assert chat.ask_many([QUESTION]) == ["in time"] and len(waits) == 1
    server.replies = [{"delay": 1.0, **completion("late")}]
    chat, _ = client(server.url, timeout=0.3, max_retries=1)
    (failure,) = chat.ask_many([QUESTION])
    assert isinstance(failure, RemoteJudgeError) and "no answer within 0.3 s (2 tries)" in str(failure)


def test_malformed_json_fails_that_question_only(stub):
    server = stub([{"status": 200, "body": "{not json"}, {"status": 200, "body": json.dumps({"choices": []})}, completion("fine")])
    chat, _ = client(server.url, concurrency=1)
    first, second, third = chat.ask_many([QUESTION] * 3)
    assert isinstance(first, RemoteJudgeError) and "not chat-completions JSON" in str(first)
    assert isinstance(second, RemoteJudgeError) and third == "fine"


def test_an_unreachable_endpoint_is_a_failure_not_a_crash():
    chat, waits = client("http://127.0.0.1:9/v1", max_retries=1)
    (failure,) = chat.ask_many([QUESTION])
    assert isinstance(failure, RemoteJudgeError) and "cannot reach" in str(failure) and len(waits) == 1


def test_no_more_than_the_cap_are_in_flight(stub):
    server = stub([{"delay": 0.2, **completion("ok")}])
    chat, _ = client(server.url, concurrency=3)
    assert chat.ask_many([QUESTION] * 9) == ["ok"] * 9
    assert server.max_in_flight == 3


def test_retry_after_reads_seconds_and_dates_and_is_capped():
    now = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
    assert retry_after_seconds("2.5") == 2.5 and retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=10), usegmt=True), now=now) == 10.0
    assert retry_after_seconds("86400") == MAX_RETRY_AFTER_SECONDS and retry_after_seconds("-4") == 0.0


@pytest.mark.django_db
def test_a_remote_routing_judge_labels_what_it_is_sure_of_in_both_orders(stub, settings, make_judge, make_audits, make_comparisons, admin_user):
    """Through the stub: a consistent answer becomes an AI label, a flipped one and an unparseable one go to people as abstentions."""
    server = stub([completion('{"better": 1, "confidence": 0.95}'), completion('{"better": 2, "confidence": 0.9}'),  # A, both orders
                   completion('{"better": 1, "confidence": 0.9}'), completion('{"better": 1, "confidence": 0.9}'),  # flips
                   completion("Response 2, clearly."), completion('{"better": 1, "confidence": 0.9}')])  # unparseable
    settings.JUDGE_URL, settings.JUDGE_CONCURRENCY, settings.AI_MIN_AUDITS, settings.AI_AUDIT_SHARE = server.url, 1, 1, 0.0
    judge = make_judge("vllm", kind=Judge.Kind.REMOTE)
    judge_remote_enable(judge=judge, user=admin_user)
    make_audits(judge, n=1, agree=1)
    comparisons = make_comparisons(3)
    ids = [c.pk for c in comparisons]
    Comparison.objects.filter(pk__in=ids).update(status="judging", judging_since=timezone.now())
    assert comparisons_judge_and_route(comparison_ids=ids) == {"ai": 1, "people": 2}
    verdicts = {v.comparison_id: v for v in Verdict.objects.filter(comparison_id__in=ids)}
    assert verdicts[ids[0]].choice == "a" and verdicts[ids[0]].confidence == 0.9
    assert (verdicts[ids[1]].abstained, verdicts[ids[1]].reason) == (True, "flipped")
    assert (verdicts[ids[2]].abstained, verdicts[ids[2]].reason) == (True, "unparseable")
    assert PreferenceLabel.objects.get(judge_version__isnull=False).comparison_id == ids[0] and len(server.requests) == 6


@pytest.mark.django_db
def test_without_an_endpoint_or_an_admin_s_enabling_a_remote_judge_sends_everything_to_people(settings, make_judge, make_comparisons, admin_user):
    settings.JUDGE_URL = ""
    judge = make_judge("vllm", kind=Judge.Kind.REMOTE)
    ids = [c.pk for c in make_comparisons(2)]
    Comparison.objects.filter(pk__in=ids).update(status="judging", judging_since=timezone.now())
    assert comparisons_judge_and_route(comparison_ids=ids[:1]) == {"people": 1}
    settings.JUDGE_URL = "http://127.0.0.1:9/v1"  # set, but nobody enabled the judge: nothing is sent
    assert comparisons_judge_and_route(comparison_ids=ids[1:]) == {"people": 1} and not Verdict.objects.exists()
