"""PostgreSQL's plans of a statement, as the tests that count what a statement reads take them."""

from __future__ import annotations

import json

from django.db import connection

# A test's few rows make sequential scans, hash joins, bitmaps and sorts cheaper than the index walks PostgreSQL takes on a
# studio's tables (bench/lease_pick.py, 25,000 comparisons), and those read every row whatever the statement.
_PLANS_OF_A_STUDIO = ("enable_seqscan", "enable_hashjoin", "enable_bitmapscan", "enable_sort")


def studio_plan(sql: str, params: list, *, buffers: bool = False) -> dict:
    """PostgreSQL's EXPLAIN ANALYZE of the statement (with ``buffers``, its BUFFERS too), under the plan a studio's tables get:
    the root plan node, as a dict."""
    with connection.cursor() as cursor:
        for setting in _PLANS_OF_A_STUDIO:
            cursor.execute(f"SET {setting} = off")
        try:
            cursor.execute(f"EXPLAIN (ANALYZE, {'BUFFERS, ' if buffers else ''}FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        finally:
            for setting in _PLANS_OF_A_STUDIO:
                cursor.execute(f"RESET {setting}")
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
