"""How much of a label call's CPU is the label's own work, against the floor of the same call without it: what cutting the
label's code can still buy, and what it cannot.

In one process, through Django's WSGI handler as a web process calls it (``label_profile --wsgi``): blocks of ``--rounds``
calls of each variant, the variants alternated ``--blocks`` times; prints each variant's median CPU ms a call over the blocks
(this process's own accounting, so a busy machine does not inflate it; the database's CPU is not in it):

- ``label``: ``POST /comparisons/{id}/label/?next=1``, as ``label_load``'s raters send it.
- ``no database``: the same call (its token, body, campaign role, throttle and JSON answer, the size of a label's), whose
  answer is one label's answer made earlier, without the service: what the framework and the API's checks cost.
- ``one statement``: that, and a transaction of one trivial statement on the labeling path's cursor: the pool's connection,
  BEGIN, the statement and COMMIT.
- ``three statements``: the same with three (a label with its next lease is three on PostgreSQL).

``label`` less ``three statements`` is the label's own work in the web process: building its statements, their parameters
and the instances read back, and the service's logic. The stand-ins replace ``feedback_app.api.views.label_answer`` for
their blocks only.

    DATABASE_URL=postgres://... .venv/bin/python -m bench.label_floor --rounds 500 --blocks 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
from pathlib import Path

from bench.label_profile import Rater, fill, history_add, rater_ready, setup

VARIANTS = ("label", "no database", "one statement", "three statements")
BODY = b'{"choice": "left", "strength": 2}'


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _stand_ins(answer: dict) -> dict:
    """The variants' replacements of ``label_answer``: the same answer, made without the service (None: the real one)."""
    from django.db import transaction

    from feedback_app.selectors import rows

    def statements(count: int):
        def stand_in(request, *settled, **kwargs):
            with transaction.atomic():
                for _ in range(count):
                    rows.scalar("SELECT 1", [])
            return answer, 201
        return stand_in

    return {"label": None, "no database": lambda request, *settled, **kwargs: (answer, 201),
            "one statement": statements(1), "three statements": statements(3)}


def floor(rater: Rater, *, rounds: int, blocks: int) -> dict:
    """Median CPU ms a call of each variant (``VARIANTS``) over ``blocks`` alternations of ``rounds`` calls each; ``rater`` must
    be combined (``label?next=1``). One label made first gives the stand-ins their answer. The real ``label_answer`` is back
    in place after, whatever happens."""
    from feedback_app.api import views

    if rater.following is None:  # no lease held yet: take one
        rater.round()
    status, raw = rater.call("POST", f"/api/v1/comparisons/{rater.following['id']}/label/", "next=1", BODY)
    assert status == 201, raw
    answer = json.loads(raw)
    rater.following = answer["next"]
    fixed = f"/api/v1/comparisons/{answer['id']}/label/"  # never labelled again: its stand-ins do not call the service
    stand_ins, real = _stand_ins(answer), views.label_answer
    per_call: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for _ in range(blocks):
            for name in VARIANTS:
                views.label_answer = stand_ins[name] or real
                started = _cpu()
                for _ in range(rounds):
                    if stand_ins[name] is None:
                        rater.round()
                    else:
                        status, raw = rater.call("POST", fixed, "next=1", BODY)
                        assert status == 201, raw
                per_call[name].append(1000 * (_cpu() - started) / rounds)
    finally:
        views.label_answer = real
    return {name: round(statistics.median(values), 3) for name, values in per_call.items()} | {
        "spread": {name: [round(min(values), 3), round(max(values), 3)] for name, values in per_call.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=500, help="calls of a variant in a block")
    p.add_argument("--blocks", type=int, default=4, help="times the variants alternate")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--history", type=int, default=10_000, help="labels of a history added first (label_growth's fill; 0: none)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    with setup(os.environ.get("DATABASE_URL")):
        from django.db import connection

        rater = Rater(fill(args.warmup + args.blocks * args.rounds + 10), combined=True, wsgi=True)
        history_add(args.history)
        rater_ready(rater, warmup=args.warmup)
        result = {"database": connection.vendor, "rounds": args.rounds, "blocks": args.blocks,
                  "cpu_ms_per_call": floor(rater, rounds=args.rounds, blocks=args.blocks)}
    spread = result["cpu_ms_per_call"].pop("spread")
    print(f"database {result['database']}; CPU ms a call in the web process, median of {args.blocks} blocks of {args.rounds} (min-max):")
    for name in VARIANTS:
        low, high = spread[name]
        print(f"  {name:17s} {result['cpu_ms_per_call'][name]:6.3f}   ({low:.3f}-{high:.3f})")
    own = result["cpu_ms_per_call"]["label"] - result["cpu_ms_per_call"]["three statements"]
    print(f"  the label's own work: {own:.3f} ms a call")
    result["spread"] = spread
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
