"""The behaviour snapshot's outputs: placeholders for what differs between equal runs, checksums, and the comparison."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path

ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
SECRET_KEYS = {"token", "prefix"}


def placeholders(value, key: str = ""):
    """Replace what differs between otherwise equal sessions: timestamps and token strings."""
    if isinstance(value, dict):
        return {k: placeholders(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [placeholders(v, key) for v in value]
    if isinstance(value, str):
        if key in SECRET_KEYS:
            return "<token>"
        if ISO_DATETIME.match(value):
            return "<datetime>"
    if key in ("seconds",) and isinstance(value, (int, float)):
        return "<seconds>"
    return value


def strip_timing(value, *, clock_year: int):
    """Drop wall-clock durations (``seconds``, ``*_seconds``) wherever they sit, and mark the
    timestamps that did not come from the step clock (rm_trainer's manifests read the real
    one: it never imports Django): they are the only ones not in the step clock's year."""
    if isinstance(value, dict):
        return {k: strip_timing(v, clock_year=clock_year) for k, v in value.items() if not (k == "seconds" or k.endswith("_seconds"))}
    if isinstance(value, list):
        return [strip_timing(v, clock_year=clock_year) for v in value]
    if isinstance(value, str) and ISO_DATETIME.match(value) and not value.startswith(f"{clock_year}-"):
        return "<wall-clock time>"
    return value


def json_text(value) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


# --------------------------------------------------------------------------------------------
# Checksums and comparison.


def checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def binary_difference(a: Path, b: Path) -> str:
    """Say where two parquet files differ (the first row and column), or just that two binary files do."""
    if a.suffix != ".parquet":
        return "(binary file)"
    try:
        import pyarrow.parquet as pq

        left, right = pq.read_table(a), pq.read_table(b)
    except Exception as exc:  # not readable as parquet: say so
        return f"(binary file; not readable as parquet: {exc})"
    if left.schema != right.schema:
        return f"parquet schemas differ:\n{left.schema}\n---\n{right.schema}"
    if left.num_rows != right.num_rows:
        return f"parquet row counts differ: {left.num_rows} vs {right.num_rows}"
    for name in left.column_names:
        x, y = left.column(name).to_pylist(), right.column(name).to_pylist()
        for row, (u, v) in enumerate(zip(x, y)):
            if u != v:
                return f"parquet column {name!r} row {row}: {str(u)[:200]!r} vs {str(v)[:200]!r}"
    return "parquet tables are equal; the bytes differ (writer metadata or encoding)"


def compare(a: Path, b: Path) -> int:
    left, right = checksums(a), checksums(b)
    differing = []
    for name in sorted(set(left) | set(right)):
        if name not in left or name not in right:
            differing.append(name)
            print(f"DIFFERS {name}: only in {a if name in left else b}")
            continue
        if left[name] == right[name]:
            continue
        differing.append(name)
        print(f"DIFFERS {name}")
        try:
            text_a, text_b = (folder.joinpath(name).read_text(encoding="utf-8").splitlines() for folder in (a, b))
        except UnicodeDecodeError:
            print("  " + binary_difference(a / name, b / name))
            continue
        diff = list(difflib.unified_diff(text_a, text_b, str(a / name), str(b / name), n=1, lineterm=""))
        for line in diff[:20]:
            print("  " + (line if len(line) < 400 else line[:400] + " ..."))
        if len(diff) > 20:
            print(f"  ... {len(diff) - 20} more diff lines")
    if differing:
        print(f"{len(differing)} file(s) differ: {', '.join(differing)}")
        return 1
    print(f"identical: {len(left)} files in {a} and {b}")
    return 0
