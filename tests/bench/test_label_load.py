"""The load generator's bookkeeping: one call per label with ?next=1, and the CPU a session of processes spent."""

import asyncio
import json
import os
import shutil
import time
from collections import Counter, defaultdict

import pytest

from bench.load_generators import ServerCpu, machine_steal_ticks, rater_loop, run_wrk, session_cpu_seconds, session_switches, think_pause_ms


class FakeResponse:
    def __init__(self, status_code, body=None):
        self.status_code, self.body = status_code, body

    def json(self):
        return self.body


class FakeClient:
    """Leases comparisons 1..n, then 204s; the label answer carries the next lease when asked with ?next=1."""

    def __init__(self, n):
        self.n, self.leased, self.calls = n, 0, []

    def _lease(self):
        if self.leased >= self.n:
            return None
        self.leased += 1
        return {"id": self.leased}

    async def get(self, path, headers):
        self.calls.append(("GET", path))
        item = self._lease()
        return FakeResponse(204) if item is None else FakeResponse(200, item)

    async def post(self, path, json, headers):
        self.calls.append(("POST", path))
        body = {"id": 1}
        if path.endswith("?next=1"):
            body["next"] = self._lease()
        return FakeResponse(201, body)


def stats():
    return {"latency": defaultdict(list), "errors": Counter(), "acknowledged": [], "repeats": 0, "empty": 0}


def run(client, combined):
    s = stats()
    asyncio.run(rater_loop(client, "t", time.monotonic() + 0.5, s, ["left"], combined))
    return s


def test_combined_labels_take_the_next_lease_from_the_label_answer():
    two_calls, one_call = FakeClient(3), FakeClient(3)
    separate, combined = run(two_calls, False), run(one_call, True)
    assert [cid for _, cid in separate["acknowledged"]] == [1, 2, 3] == [cid for _, cid in combined["acknowledged"]]
    labels = lambda client: [path for method, path in client.calls if method == "POST"]  # noqa: E731
    assert labels(one_call) == [f"/api/v1/comparisons/{i}/label/?next=1" for i in (1, 2, 3)]
    assert labels(two_calls) == [f"/api/v1/comparisons/{i}/label/" for i in (1, 2, 3)]
    # with ?next=1 only the first lease (and the polls once nothing is left) costs a next call
    assert len(combined["latency"]["next"]) == 1 + combined["empty"] and len(separate["latency"]["next"]) == 3 + separate["empty"]


def test_session_cpu_seconds_counts_this_session_s_work():
    session = os.getsid(0)
    before = session_cpu_seconds([session])
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert session_cpu_seconds([session]) - before >= 0.2
    assert session_cpu_seconds([]) == 0


def test_session_cpu_seconds_counts_a_parent_s_children_after_they_ended():
    """A database's backends run in sessions of their own and end during the run: their parent's reaped time counts them."""
    import subprocess
    import sys

    before = session_cpu_seconds([], [os.getpid()])
    subprocess.run([sys.executable, "-c", "import time\nd = time.process_time() + 0.4\nwhile time.process_time() < d: pass"],
                   check=True, start_new_session=True)
    assert session_cpu_seconds([], [os.getpid()]) - before >= 0.3


def test_session_switches_counts_a_thread_that_waits():
    """This session's thread that sleeps 30 times switches voluntarily at least 30 times; an empty selection counts none."""
    session = os.getsid(0)
    voluntary0, involuntary0 = session_switches([session])
    for _ in range(30):
        time.sleep(0.001)
    voluntary1, involuntary1 = session_switches([session])
    assert voluntary1 - voluntary0 >= 30 and involuntary1 >= involuntary0
    assert session_switches([]) == (0, 0)


def test_machine_steal_ticks_are_a_share_of_all():
    stolen, ticks = machine_steal_ticks()
    assert 0 <= stolen <= ticks and ticks > 0


def test_a_window_reads_the_groups_cpu_switches_and_the_host_s_share():
    cpu = ServerCpu({"this": ([os.getsid(0)], []), "nothing": ([], [])})
    window = cpu.window()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    for _ in range(10):
        time.sleep(0.001)
    spent = window.end()
    assert set(spent["server_cpu_by_group"]) == {"this"} and spent["server_cpu_by_group"]["this"] >= 0.1
    assert spent["server_switches_by_group"]["this"][0] >= 10
    assert spent["machine_steal_share"] is None or 0 <= spent["machine_steal_share"] <= 1


class FakeApi:
    """Next and label as the API answers them, for wrk: per token, comparisons 1..n are leased in turn (next/ returns the lease a rater
    holds, as the API does); the first label of comparison 2
    is answered 503 (the rater must send the same label again); the label's answer carries the next lease when asked with ?next=1."""

    def __init__(self, n: int):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.n, self.leased, self.created, self.refused, self.holding = n, Counter(), Counter(), set(), {}
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def _lease(self, token):
                if token not in api.holding:
                    if api.leased[token] >= api.n:
                        return None
                    api.leased[token] += 1
                    api.holding[token] = api.leased[token]
                return {"id": api.holding[token], "prompt": "p"}

            def do_GET(self):
                token = self.headers["Authorization"].split()[1]
                with api.lock:
                    lease = self._lease(token)
                self._answer(204) if lease is None else self._answer(200, lease)

            def do_POST(self):
                token = self.headers["Authorization"].split()[1]
                self.rfile.read(int(self.headers["Content-Length"]))
                comparison = int(self.path.split("/")[4])
                with api.lock:
                    if comparison == 2 and token not in api.refused:
                        api.refused.add(token)
                        return self._answer(503, {"detail": "busy"})
                    api.created[(token, comparison)] += 1
                    if api.holding.get(token) == comparison:
                        del api.holding[token]
                    body = {"id": comparison, "comparison_id": comparison}
                    if self.path.endswith("?next=1"):
                        body["next"] = self._lease(token)
                self._answer(201, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def _wrk_run(tmp_path, comparisons: int, **load) -> tuple[dict, FakeApi]:
    """Two raters driven by wrk for 2 s against a ``FakeApi`` of ``comparisons``; the run's stats and the API."""
    api = FakeApi(comparisons)
    try:
        stats = run_wrk(url=api.url, tokens={"rater-a": "token-a", "rater-b": "token-b"}, seconds=2, scratch=tmp_path, **load)
    finally:
        api.server.shutdown()
    return stats, api


@pytest.mark.skipif(shutil.which("wrk") is None and not os.environ.get("REQUIRE_BROWSER"), reason="wrk is not installed (apt-get install wrk)")
@pytest.mark.parametrize("combined", [True, False])
def test_wrk_raters_label_each_lease_once_resend_a_refused_label_and_report_what_was_acknowledged(tmp_path, combined):
    stats, api = _wrk_run(tmp_path, 5, combined=combined)
    assert sorted(stats["acknowledged"]) == sorted(api.created) == [(t, c) for t in ("token-a", "token-b") for c in range(1, 6)]
    assert set(api.created.values()) == {1}
    assert stats["errors"] == Counter({"answers other than 200/201/204": 2})  # the refused label of each rater, sent again
    assert stats["empty"] >= 2 and stats["latency_ms_by_wrk"]["n"] > 10 and stats["client_cpu_seconds"] > 0


@pytest.mark.django_db
def test_a_run_prepares_its_comparisons_in_short_transactions_each_pair_its_own_prompts(monkeypatch):
    """A chunk a transaction (a studio under test keeps its write lock within reach); every comparison's two replies are its prompt's."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench import label_load
    from feedback_app.models import Comparison

    monkeypatch.setattr(label_load, "PREPARE_CHUNK", 3)
    with CaptureQueriesContext(connection) as queries:
        tokens = label_load.prepare(raters=2, comparisons=7, required_labels=2, tag="chunk")
    assert sorted(tokens) == ["bench-chunk-000", "bench-chunk-001"]
    comparisons = list(Comparison.objects.filter(prompt__source="bench:chunk").select_related("prompt", "response_a", "response_b"))
    assert len(comparisons) == 7 and {c.required_labels for c in comparisons} == {2}
    assert all(c.response_a.prompt_id == c.response_b.prompt_id == c.prompt_id != None for c in comparisons)  # noqa: E711
    assert sorted(c.prompt.text.split(":")[0] for c in comparisons) == sorted(f"[chunk] Customer request {i}" for i in range(7))
    comparison_inserts = [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "feedback_app_comparison"')]
    assert len(comparison_inserts) == 3  # 3 + 3 + 1, one transaction each


@pytest.mark.django_db
def test_a_run_ends_the_leases_its_raters_still_hold(make_user, make_comparisons):
    """After the audit, the run's raters' unlabelled leases end, so the next run's picks do not walk past them; other
    raters' leases are left as they are."""
    from django.utils import timezone

    from bench.label_load import leases_end
    from feedback_app.models import Assignment
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.leasing import assignment_lease_next

    make_comparisons(3)
    bench_rater, other = make_user(username="bench-abcd-000"), make_user()
    for rater in (bench_rater, other):
        assignment_lease_next(campaign=campaign_default(), rater=rater)
    assert leases_end(tokens={"bench-abcd-000": "token"}) == 1
    now = timezone.now()
    assert not Assignment.objects.filter(rater=bench_rater, lease_expires_at__gt=now).exists()
    assert Assignment.objects.filter(rater=other, lease_expires_at__gt=now).exists()
    assert leases_end(tokens={"bench-abcd-000": "token"}) == 0


@pytest.mark.django_db
def test_the_warm_up_s_leases_end_even_those_taken_by_calls_still_under_way_at_the_first_pass(make_user, make_comparisons, monkeypatch):
    """A label answered after the warm-up's first pass takes a lease (here: one taken between the passes); the passes go on
    until one ends none, so no warm-up lease holds the queue's head through the timed run."""
    from django.utils import timezone

    import bench.label_load as label_load
    from feedback_app.models import Assignment
    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.services.leasing import assignment_lease_next

    make_comparisons(3)
    early, late = make_user(username="bench-abcd-000"), make_user(username="bench-abcd-001")
    assignment_lease_next(campaign=campaign_default(), rater=early)
    passes, original = [], label_load.leases_end

    def pass_then_a_late_answer(*, tokens):
        passes.append(ended := original(tokens=tokens))
        if len(passes) == 1:  # the answer still under way at the first pass
            assignment_lease_next(campaign=campaign_default(), rater=late)
        return ended

    tokens = {"bench-abcd-000": "t0", "bench-abcd-001": "t1"}
    monkeypatch.setattr(label_load, "leases_end", pass_then_a_late_answer)
    assert label_load.leases_end_settled(tokens=tokens, settle=0) == 2
    assert passes == [1, 1, 0]
    assert not Assignment.objects.filter(rater__in=[early, late], lease_expires_at__gt=timezone.now()).exists()


def test_think_pauses_are_the_think_time_or_drawn_around_it_and_a_spread_first_pause_spreads_the_starts():
    import random

    assert think_pause_ms(200) == 200 and think_pause_ms(200, first=True) == 0
    draw = random.Random(7).random
    pauses = [think_pause_ms(200, spread=True, draw=draw) for _ in range(2000)]
    firsts = [think_pause_ms(200, spread=True, first=True, draw=draw) for _ in range(2000)]
    assert 100 <= min(pauses) < 110 and 290 < max(pauses) <= 300 and 195 < sum(pauses) / len(pauses) < 205
    assert 0 <= min(firsts) < 10 and 190 < max(firsts) <= 200
    assert think_pause_ms(200, spread=True, draw=lambda: 0.0) == 100 and think_pause_ms(200, spread=True, first=True, draw=lambda: 0.0) == 0


@pytest.mark.skipif(shutil.which("wrk") is None and not os.environ.get("REQUIRE_BROWSER"), reason="wrk is not installed (apt-get install wrk)")
@pytest.mark.parametrize("spread", [False, True])
def test_wrk_raters_who_think_between_labels_still_label_each_lease_once(tmp_path, spread):
    stats, api = _wrk_run(tmp_path, 3, combined=True, think_ms=40, spread=spread)
    assert sorted(stats["acknowledged"]) == sorted(api.created) == [(t, c) for t in ("token-a", "token-b") for c in range(1, 4)]
    assert set(api.created.values()) == {1}
