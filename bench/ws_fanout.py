"""How fast a policy swap reaches every rater's open page, and whether clients that were away catch up.

Run from the project root:

    .venv/bin/python -m bench.ws_fanout --clients 200 --swaps 3 --json bench/out/ws_fanout.json

In a scratch VAR_DIR (SQLite) with its own Redis and one daphne on 127.0.0.1, the bench
creates one rater per client with a database session (no password login), connects every
client to ``/ws/rater/`` with the ``websockets`` package (the Origin header is the site's,
as AllowedHostsOriginValidator wants) and waits for the state sent on connect. Then, per
swap, a share of the clients (``--drop``) closes its socket, the bench activates the next
policy through ``version_activate`` with the channel layer on the same Redis, and:

- every connected client must receive the toast naming the new policy; its latency runs
  from the moment ``group_send`` is called (in this process) to the message's arrival;
- every client that was away reconnects once the swap has been sent and must see the new
  name in the badge of the state sent on connect.

Clients and the swap run in this process; daphne, which serves all the sockets, in another.
Everything the bench starts is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.label_load import percentile
from bench.scratch import ScratchStudio, rater_create

BADGE = re.compile(r'id="policy-badge".*?<strong>(.*?)</strong>', re.S)


@dataclass
class Client:
    """One rater's websocket and what it received."""

    index: int
    cookie: str
    socket: object = None
    reader: asyncio.Task | None = None
    received: list[tuple[float, str]] = field(default_factory=list)
    connect_seconds: list[float] = field(default_factory=list)


def summary_ms(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0}
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "min_ms": round(min(ms), 1), "p50_ms": round(percentile(ms, 50), 1), "p90_ms": round(percentile(ms, 90), 1),
            "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1), "mean_ms": round(statistics.mean(ms), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200, help="Websocket clients, one rater each.")
    parser.add_argument("--drop", type=float, default=0.1, help="Share of the clients away during each swap.")
    parser.add_argument("--swaps", type=int, default=3, help="Policy swaps to time.")
    parser.add_argument("--connect-concurrency", type=int, default=20, help="Clients connecting at once.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds a swap may take to reach everyone.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder (daphne.log, the database).")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    with ScratchStudio("ws-fanout-", keep=args.keep) as studio:
        cookies = make_sessions(args.clients)
        url = studio.start_web()
        result = asyncio.run(run(args, int(url.rsplit(":", 1)[1]), cookies))
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    print_summary(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def make_sessions(n: int) -> list[str]:
    """Create n raters and a logged-in database session for each; return their Cookie headers."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    cookies = []
    for i in range(n):
        user, _, _ = rater_create(f"fanout-{i:04d}")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


async def connect(client: Client, url: str, origin: str) -> None:
    """Open the client's socket and wait for the state sent on connect (recorded like any message)."""
    import websockets

    started = time.perf_counter()
    client.socket = await websockets.connect(url, origin=origin, additional_headers={"Cookie": client.cookie}, open_timeout=60,
                                             max_queue=None)
    first = await asyncio.wait_for(client.socket.recv(), timeout=60)
    client.received.append((time.perf_counter(), first))
    client.connect_seconds.append(time.perf_counter() - started)
    client.reader = asyncio.create_task(read(client))


async def read(client: Client) -> None:
    import websockets

    try:
        async for message in client.socket:
            client.received.append((time.perf_counter(), message))
    except websockets.ConnectionClosed:
        pass


async def disconnect(client: Client) -> None:
    await client.socket.close()
    if client.reader is not None:
        await client.reader
    client.socket = client.reader = None


async def run(args, port: int, cookies: list[str]) -> dict:
    from feedback_app import events

    url, origin = f"ws://127.0.0.1:{port}/ws/rater/", f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    policies = [await asyncio.to_thread(_policy_create, f"policy-fanout-{i}") for i in range(args.swaps + 1)]
    await asyncio.to_thread(_activate, policies[0])

    # When the swap is announced: the bench's own process calls group_send, so a wrapper times it.
    sent: dict[str, float] = {}
    original = events.broadcast

    def timed_broadcast(group: str, event_type: str, html: str) -> None:
        if event_type == "policy.swapped":
            sent["at"] = time.perf_counter()
        original(group, event_type, html)
        if event_type == "policy.swapped":
            sent["returned"] = time.perf_counter()

    events.broadcast = timed_broadcast

    clients = [Client(index=i, cookie=c) for i, c in enumerate(cookies)]
    gate = asyncio.Semaphore(args.connect_concurrency)

    async def connect_gated(client: Client) -> None:
        async with gate:
            await connect(client, url, origin)

    t = time.perf_counter()
    await asyncio.gather(*(connect_gated(c) for c in clients))
    connect_wall = time.perf_counter() - t
    first_states = [BADGE.search(c.received[0][1]) for c in clients]
    states_ok = sum(1 for m in first_states if m and m.group(1) == policies[0])
    print(f"{len(clients)} clients connected in {connect_wall:.1f} s ({args.connect_concurrency} at a time); "
          f"{states_ok} got the state naming {policies[0]}", flush=True)

    swaps = []
    all_latencies: list[float] = []
    ok = states_ok == len(clients)
    for number, name in enumerate(policies[1:], 1):
        away = rng.sample(clients, max(0, round(len(clients) * args.drop)))
        await asyncio.gather(*(disconnect(c) for c in away))
        present = [c for c in clients if c.socket is not None]
        marks = {c.index: len(c.received) for c in clients}
        sent.clear()
        await asyncio.to_thread(_activate, name)
        # Those who were away come back only once the swap has been announced.
        reconnect = asyncio.gather(*(connect_gated(c) for c in away))
        deadline = time.perf_counter() + args.timeout
        while time.perf_counter() < deadline and not all(_toast_at(c, marks[c.index], name) for c in present):
            await asyncio.sleep(0.01)
        await reconnect
        if "at" not in sent:
            raise SystemExit(f"activating {name} pushed nothing to the raters")
        latencies = [_toast_at(c, marks[c.index], name) - sent["at"] for c in present if _toast_at(c, marks[c.index], name)]
        missed = [c.index for c in present if not _toast_at(c, marks[c.index], name)]
        recovered = [c for c in away if (m := BADGE.search(c.received[marks[c.index]][1])) and m.group(1) == name]
        toast_on_reconnect = sum(1 for c in away if any("policy-toast" in text for _, text in c.received[marks[c.index]:]))
        swap = {
            "policy": name, "connected": len(present), "away": len(away),
            "delivered": len(latencies), "missed": missed,
            "recovered_on_reconnect": len(recovered), "away_who_also_got_the_toast": toast_on_reconnect,
            "group_send_ms": round((sent["returned"] - sent["at"]) * 1000, 1) if "returned" in sent else None,
            "latency": summary_ms(latencies),
            "reconnect_to_state": summary_ms([c.connect_seconds[-1] for c in away]),
        }
        swaps.append(swap)
        all_latencies += latencies
        ok = ok and not missed and len(recovered) == len(away)
        print(f"swap {number} → {name}: {len(latencies)}/{len(present)} connected clients got the toast "
              f"(p50 {swap['latency'].get('p50_ms')} ms, p99 {swap['latency'].get('p99_ms')} ms, max {swap['latency'].get('max_ms')} ms; "
              f"group_send {swap['group_send_ms']} ms); {len(recovered)}/{len(away)} away clients read {name} on reconnect", flush=True)

    events.broadcast = original
    await asyncio.gather(*(disconnect(c) for c in clients if c.socket is not None))
    # Let daphne finish the disconnect handlers: stopped in the middle of one, it hangs on exit.
    await asyncio.sleep(2)
    return {
        "clients": len(clients), "drop": args.drop, "swaps": swaps, "connect_wall_seconds": round(connect_wall, 2),
        "connect_to_state": summary_ms([c.connect_seconds[0] for c in clients]),
        "latency_all_swaps": summary_ms(all_latencies), "ok": ok,
    }


def _toast_at(client: Client, since: int, name: str) -> float | None:
    """Return when the client received the toast naming ``name``, after its first ``since`` messages."""
    for at, text in client.received[since:]:
        if "policy-toast" in text and f"<strong>{name}</strong>" in text:
            return at
    return None


def _policy_create(name: str) -> str:
    from django.db import connection

    from feedback_app.models import PolicyVersion

    try:
        PolicyVersion.objects.create(name=name, path=f"bench/{name}")
    finally:
        connection.close()
    return name


def _activate(name: str) -> None:
    """Activate the policy named ``name``; its push runs on commit, in this thread (not the event loop's)."""
    from django.db import connection, transaction

    from feedback_app.models import PolicyVersion
    from feedback_app.services.versions import version_activate

    try:
        with transaction.atomic():
            version_activate(version=PolicyVersion.objects.get(name=name), user=None, action="promote", reason="bench.ws_fanout")
    finally:
        connection.close()


def print_summary(result: dict) -> None:
    lat = result["latency_all_swaps"]
    print()
    print(f"machine: {result['machine']}; {result['clients']} clients on /ws/rater/, {result['drop']:.0%} away during each swap")
    print(f"connect → first state: p50 {result['connect_to_state'].get('p50_ms')} ms, p99 {result['connect_to_state'].get('p99_ms')} ms "
          f"({result['connect_wall_seconds']} s for all)")
    print(f"swap toast, group_send → client, over {len(result['swaps'])} swaps ({lat.get('n', 0)} deliveries): "
          f"p50 {lat.get('p50_ms')} ms, p90 {lat.get('p90_ms')} ms, p99 {lat.get('p99_ms')} ms, max {lat.get('max_ms')} ms")
    for s in result["swaps"]:
        print(f"  {s['policy']}: delivered {s['delivered']}/{s['connected']}, missed {len(s['missed'])}, "
              f"away clients that read the new name on reconnect {s['recovered_on_reconnect']}/{s['away']}")
    print("OK: every client got the swap or recovered it on reconnect" if result["ok"] else "FAILED: some client neither got nor recovered a swap")


if __name__ == "__main__":
    sys.exit(main())
