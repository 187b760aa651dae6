"""The raters of ``label_load``: asyncio tasks with httpx in this process (``run_load``), or the threads of Debian's compiled
``wrk`` (``run_wrk``, ``bench/label_load.lua``), and the server's CPU read from /proc around them (``ServerCpu``)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def think_pause_ms(think_ms: float, *, spread: bool = False, first: bool = False, draw=random.random) -> float:
    """A rater's pause, in ms: after a label's answer, ``think_ms``; before their ``first`` call, none. With ``spread``, after
    an answer ``think_ms`` on average, drawn evenly from half to one and a half times it, and before the first call from
    none to ``think_ms``: raters who all pause alike and start together stay together, and a thousand of them arrive in
    waves (a thousand calls at once every few seconds). ``bench/label_load.lua`` draws the same."""
    if not spread:
        return 0.0 if first else think_ms
    return think_ms * draw() if first else think_ms * (0.5 + draw())


async def rater_loop(client, token: str, deadline: float, stats: dict, choices: list[str], combined: bool = False, think_ms: float = 0,
                     spread: bool = False) -> None:
    """Loop next → label until ``deadline``; ``combined``: label with ?next=1 and take the next lease from its answer; ``think_ms``: pause
    after each label's answer (``think_pause_ms``, ``spread`` or not)."""
    if think_ms and spread:
        await asyncio.sleep(think_pause_ms(think_ms, spread=True, first=True) / 1000)
    headers = {"Authorization": f"Token {token}"}
    suffix = "?next=1" if combined else ""
    i, following = 0, None
    while time.monotonic() < deadline:
        if following is None:
            t0 = time.perf_counter()
            try:
                r = await client.get("/api/v1/comparisons/next/", headers=headers)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                stats["errors"][f"next: {type(exc).__name__}"] += 1
                continue
            stats["latency"]["next"].append(time.perf_counter() - t0)
            if r.status_code == 204:
                stats["empty"] += 1
                await asyncio.sleep(0.2)
                continue
            if r.status_code != 200:
                stats["errors"][f"next: HTTP {r.status_code}"] += 1
                continue
            following = r.json()
        comparison_id, following = following["id"], None
        body = {"choice": choices[i % len(choices)], "strength": 1 + i % 3, "time_on_task_ms": 1000}
        i += 1
        # A label whose answer is lost (timeout, reset) is sent again: the API is idempotent.
        for attempt in range(5):
            t0 = time.perf_counter()
            try:
                r = await client.post(f"/api/v1/comparisons/{comparison_id}/label/{suffix}", json=body, headers=headers)
            except Exception as exc:  # noqa: BLE001
                stats["errors"][f"label: {type(exc).__name__}"] += 1
                continue
            stats["latency"]["label"].append(time.perf_counter() - t0)
            if r.status_code == 201:
                stats["acknowledged"].append((token, comparison_id))
            elif r.status_code == 200:
                stats["repeats"] += 1
            else:
                stats["errors"][f"label: HTTP {r.status_code}"] += 1
            if combined and r.status_code in (200, 201):
                following = r.json().get("next")  # null: none left now; the loop asks next/ as before
            break
        if think_ms:
            await asyncio.sleep(think_pause_ms(think_ms, spread=spread) / 1000)


def _session_processes(sessions: list[int], parents: list[int] = ()):
    """Yield (pid, the fields of /proc/<pid>/stat after the name) of every live process in ``sessions``, of ``parents`` and their
    children."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[3]) in sessions or int(entry.name) in parents or int(fields[1]) in parents:  # fields after the name: state, ppid, pgrp, session, ..., utime (11), stime (12), cutime, cstime
            yield int(entry.name), fields


def session_cpu_seconds(sessions: list[int], parents: list[int] = ()) -> float:
    """Return the CPU seconds (user + system) of every live process in ``sessions``, of ``parents`` and their children, and of the
    children these reaped, from /proc."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for _, fields in _session_processes(sessions, parents):
        # with the children it has reaped (cutime, cstime): short-lived processes, such as a database's backends, are gone by the end
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / ticks


def session_switches(sessions: list[int], parents: list[int] = ()) -> tuple[int, int]:
    """Return the (voluntary, involuntary) context switches of every thread of every live process ``session_cpu_seconds`` counts,
    from /proc: a thread that waits (for a socket, a lock) switches voluntarily; one taken off its core for another, involuntarily.
    A process that ended meanwhile is not counted (Linux keeps no reaped children's switches)."""
    voluntary = involuntary = 0
    for pid, _ in _session_processes(sessions, parents):
        try:
            threads = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for thread in threads:
            try:
                status = (thread / "status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return voluntary, involuntary


def machine_steal_ticks() -> tuple[int, int]:
    """Return (stolen, all) CPU ticks of this machine since it started, from /proc/stat: a virtual machine's time its host gave
    another (0 where the kernel reports none)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user and nice]
    return (values[7] if len(values) > 7 else 0), sum(values[:8])


def database_server() -> int | None:
    """Return the pid of a PostgreSQL server on this machine (its postmaster; each backend is its child, in a session of its own),
    so its CPU counts as the server's; None elsewhere."""
    from django.db import DatabaseError, connection

    if connection.vendor != "postgresql":
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW data_directory")
            postmaster = int((Path(cursor.fetchone()[0]) / "postmaster.pid").read_text().split()[0])
        return postmaster if (Path("/proc") / str(postmaster)).exists() else None
    except (OSError, ValueError, IndexError, DatabaseError):  # another machine's, or not readable: not counted, and said so
        return None


async def warm_up(client, tokens: dict[str, str]) -> None:
    """One next/ call per rater before the timed run: the web processes' first requests load their URLs, views and connections."""
    await asyncio.gather(*(client.get("/api/v1/comparisons/next/", headers={"Authorization": f"Token {t}"}) for t in tokens.values()))


async def _warm_up_at(url: str, tokens: dict[str, str]) -> None:
    import httpx

    # no limit on the wait for one of the client's connections: a thousand raters' calls queue for its hundred
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30.0, pool=None)) as client:
        await warm_up(client, tokens)


class ServerCpu:
    """The server's processes in groups (web, redis, workers, database), each as (sessions, parents) for ``session_cpu_seconds``."""

    def __init__(self, groups: dict[str, tuple[list[int], list[int]]]) -> None:
        self.groups = {name: group for name, group in groups.items() if group[0] or group[1]}

    def read(self) -> dict[str, float]:
        return {name: session_cpu_seconds(list(sessions), list(parents)) for name, (sessions, parents) in self.groups.items()}

    def switches(self) -> dict[str, tuple[int, int]]:
        return {name: session_switches(list(sessions), list(parents)) for name, (sessions, parents) in self.groups.items()}

    def window(self) -> "Window":
        """Start reading a timed window: the CPU read by ``read``, the context switches and the machine's stolen share."""
        return Window(self)


class Window:
    """What a timed window cost the server (``ServerCpu``'s groups) and what the machine's host took from it."""

    def __init__(self, cpu: ServerCpu) -> None:
        self.cpu, self.cpu0, self.switches0, self.steal0 = cpu, cpu.read(), cpu.switches(), machine_steal_ticks()

    def end(self) -> dict:
        """Return ``server_cpu_by_group`` (seconds), ``server_switches_by_group`` ((voluntary, involuntary)) and ``machine_steal_share``
        (the share of the machine's CPU ticks its host took) since the window started."""
        cpu1, switches1, (stolen, ticks) = self.cpu.read(), self.cpu.switches(), machine_steal_ticks()
        stolen, ticks = stolen - self.steal0[0], ticks - self.steal0[1]
        return {"server_cpu_by_group": {name: cpu1[name] - seconds for name, seconds in self.cpu0.items()},
                "server_switches_by_group": {name: (switches1[name][0] - v, switches1[name][1] - i) for name, (v, i) in self.switches0.items()},
                "machine_steal_share": round(stolen / ticks, 4) if ticks > 0 else None}


async def run_load(*, url: str, tokens: dict[str, str], seconds: float, combined: bool = False, cpu: ServerCpu | None = None,
                   think_ms: float = 0, spread: bool = False) -> dict:
    import httpx

    stats = {"latency": defaultdict(list), "errors": Counter(), "acknowledged": [], "repeats": 0, "empty": 0}
    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=len(tokens) + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(30.0)) as client:
        await warm_up(client, tokens)
        window, client0 = cpu.window() if cpu else None, time.process_time()
        started = time.monotonic()
        deadline = started + seconds
        choices = ["left", "right", "left", "tie", "right", "both_bad"]
        await asyncio.gather(*(rater_loop(client, t, deadline, stats, choices[i % 3:] + choices[: i % 3], combined, think_ms, spread)
                               for i, t in enumerate(tokens.values())))
        stats["elapsed"] = time.monotonic() - started
        stats.update(window.end() if window else {"server_cpu_by_group": None})
        stats["client_cpu_seconds"] = time.process_time() - client0
    return stats


WRK_SCRIPT = ROOT / "bench" / "label_load.lua"


def run_wrk(*, url: str, tokens: dict[str, str], seconds: float, combined: bool = False, cpu: ServerCpu | None = None, think_ms: float = 0,
            spread: bool = False, scratch: Path) -> dict:
    """The same raters driven by wrk (``bench/label_load.lua``: one wrk thread and connection per rater); return the stats ``run_load``
    returns, with one latency figure for every call (wrk's own histogram)."""
    import resource

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("--generator wrk needs wrk on PATH (Debian: apt-get install wrk)")
    names = list(tokens)
    (scratch / "tokens.txt").write_text("".join(f"{tokens[name]}\n" for name in names))
    out = scratch / "wrk-result.txt"
    env = {**os.environ, "LABEL_LOAD_TOKENS": str(scratch / "tokens.txt"), "LABEL_LOAD_OUT": str(out), "LABEL_LOAD_COMBINED": "1" if combined else "0",
           "LABEL_LOAD_THINK_MS": str(think_ms), "LABEL_LOAD_THINK_SPREAD": "1" if spread else "0"}
    n = len(names)
    asyncio.run(_warm_up_at(url, tokens))  # the leases it takes are the raters' first (next/ returns a rater's current lease)
    window, client0, children0 = cpu.window() if cpu else None, time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    finished = subprocess.run([wrk, "-t", str(n), "-c", str(n), "-d", f"{seconds:g}s", "--timeout", "30s", "-s", str(WRK_SCRIPT), url],
                              env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    server = window.end() if window else {"server_cpu_by_group": None}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = time.process_time() - client0 + children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime
    if finished.returncode != 0 or not out.exists():
        raise SystemExit(f"wrk failed ({finished.returncode}): {finished.stderr.strip() or finished.stdout.strip()}")
    stats = {"latency": {}, "errors": Counter(), "acknowledged": [], "repeats": 0, "empty": 0, "elapsed": elapsed, **server,
             "client_cpu_seconds": client, "latency_ms_by_wrk": {}, "in_flight_at_stop": []}
    for line in out.read_text().splitlines():
        key, _, rest = line.partition(" ")
        if key == "rater":
            index, repeats, empty, failed, inflight, acked = (rest.split(" ") + [""])[:6]
            token = tokens[names[int(index) - 1]]
            stats["acknowledged"] += [(token, int(c)) for c in acked.split(",") if c]
            if int(inflight):
                stats["in_flight_at_stop"].append((token, int(inflight)))
            stats["repeats"] += int(repeats)
            stats["empty"] += int(empty)
            if int(failed):
                stats["errors"]["answers other than 200/201/204"] += int(failed)
        elif key == "socket_errors":
            for kind, count in zip(("connect", "read", "write", "timeout"), map(int, rest.split())):
                if count:
                    stats["errors"][f"socket {kind}"] += count
        elif key.startswith("latency_p"):
            stats["latency_ms_by_wrk"][key.removeprefix("latency_").removesuffix("_us")] = round(int(rest) / 1000, 1)
        elif key == "requests":
            stats["latency_ms_by_wrk"]["n"] = int(rest)
    return stats
