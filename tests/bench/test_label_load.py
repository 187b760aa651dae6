"""The load generator's bookkeeping: one call per label with ?next=1, and the CPU a session of processes spent."""

import asyncio
import os
import time
from collections import Counter, defaultdict

from bench.label_load import rater_loop, session_cpu_seconds


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
