"""bench/goal_runs: each run on a fresh VAR_DIR and database (dropped after), and the spread and goal counts of the runs."""

import json
import os
import sys

import pytest

from bench.goal_runs import GOAL_RUN, GOALS, database_named, figures, is_postgresql, main, met, summary

# A stand-in for label_load: it writes a result shaped as label_load's from the figures in FIGURES (one line a run, taken in
# turn), and records the VAR_DIR and DATABASE_URL it was given.
STAND_IN = '''
import json, os, sys
from pathlib import Path
seen = Path(os.environ["SEEN"])
runs = seen.read_text().splitlines() if seen.exists() else []
rate, p99, cpu, clean = json.loads(Path(os.environ["FIGURES"]).read_text().splitlines()[len(runs)])
seen.write_text("".join(line + "\\n" for line in runs) + json.dumps([os.environ["VAR_DIR"], os.environ.get("DATABASE_URL")]) + "\\n")
if rate is None:
    sys.exit(3)
Path(sys.argv[sys.argv.index("--json") + 1]).write_text(json.dumps({"labels_per_second": rate, "server_cpu_ms_per_label": cpu,
    "latency_ms": {"all calls": {"p99": p99}}, "audit_ok": clean, "args": sys.argv[1:]}))
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    monkeypatch.setenv("SEEN", str(tmp_path / "seen"))
    monkeypatch.setenv("FIGURES", str(tmp_path / "figures"))

    def given(*runs):
        (tmp_path / "figures").write_text("".join(json.dumps(run) + "\n" for run in runs))
        return [sys.executable, str(script)]

    given.seen = lambda: [json.loads(line) for line in (tmp_path / "seen").read_text().splitlines()]
    return given


def databases_named_like(prefix: str) -> list[str]:
    import psycopg

    with psycopg.connect(database_named(os.environ["DATABASE_URL"], "postgres"), autocommit=True) as connection:
        return [name for (name,) in connection.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"])]


def test_a_url_names_another_database_and_keeps_the_rest():
    assert database_named("postgres://u:p@db.host:5433/studio?sslmode=require", "goal_run_0") == \
        "postgres://u:p@db.host:5433/goal_run_0?sslmode=require"
    assert is_postgresql("postgresql://h/x") and not is_postgresql("sqlite:///var/db.sqlite3") and not is_postgresql(None)


def test_the_spread_and_the_runs_meeting_each_goal():
    runs = [{"labels_per_second": 340.0, "p99_ms": 60.0, "server_cpu_ms_per_label": 4.0, "audit_ok": True},
            {"labels_per_second": 310.0, "p99_ms": 120.0, "server_cpu_ms_per_label": 2.9, "audit_ok": True},
            {"labels_per_second": 350.0, "p99_ms": 40.0, "server_cpu_ms_per_label": 2.5, "audit_ok": False}]
    found = summary(runs)
    assert found["spread"]["p99_ms"] == {"min": 40.0, "median": 60.0, "max": 120.0}
    assert found["spread"]["labels_per_second"] == {"min": 310.0, "median": 340.0, "max": 350.0}
    assert found["audits_clean"] == 2
    # the third run met every goal on its figures, but its audit failed: it counts for none
    assert found["runs_meeting"] == {"labels_per_second": 2, "p99_ms": 1, "server_cpu_ms_per_label": 1}
    assert met(runs[2]) == dict.fromkeys(GOALS, False)


def test_the_p99_is_wrks_of_every_call_or_the_slowest_kind_of_call_httpx_timed_apart():
    result = {"labels_per_second": 300.0, "server_cpu_ms_per_label": 4.0, "audit_ok": True}
    assert figures({**result, "latency_ms": {"all calls": {"p50": 5.0, "p99": 61.0, "n": 9}}})["p99_ms"] == 61.0
    httpx = {"label": {"p50": 6.0, "p99": 80.0, "n": 9}, "next": {"p50": 3.0, "p99": 95.0, "n": 9}}
    assert figures({**result, "latency_ms": httpx})["p99_ms"] == 95.0


def test_each_run_gets_a_fresh_var_dir_and_database_and_the_summary_is_written(stand_in, tmp_path, capsys):
    command = stand_in([345.0, 55.0, 4.1, True], [320.0, 130.0, 3.9, True])
    out = tmp_path / "goal.json"
    assert main(["--runs", "2", "--json", str(out), "--", "--seconds", "5"], command=command) == 0
    seen = stand_in.seen()
    assert len(seen) == 2 and seen[0][0] != seen[1][0]  # a VAR_DIR each
    written = json.loads(out.read_text())
    assert written["summary"]["runs_meeting"] == {"labels_per_second": 2, "p99_ms": 1, "server_cpu_ms_per_label": 0}
    assert written["results"][0]["args"] == ["--seconds", "5", "--json", written["results"][0]["args"][-1]]
    assert "p99_ms: min 55.0, median 92.5, max 130.0; goal <= 100 met in 1 of 2" in capsys.readouterr().out
    if is_postgresql(os.environ.get("DATABASE_URL")):
        names = [url.rsplit("/", 1)[1] for _, url in seen]
        assert names[0] != names[1] and all(name.startswith("goal_run_") for name in names)
        assert not any(databases_named_like(name) for name in names)  # dropped after
    else:
        assert [url for _, url in seen] == [None, None]  # SQLite in each run's VAR_DIR


def test_a_run_that_writes_no_result_stops_the_runs_naming_it_and_its_database_is_dropped(stand_in):
    command = stand_in([345.0, 55.0, 4.1, True], [None, None, None, None], [345.0, 55.0, 4.1, True])
    with pytest.raises(RuntimeError, match="run 1 wrote no result"):
        main(["--runs", "3"], command=command)
    seen = stand_in.seen()
    assert len(seen) == 2  # the third never ran
    if is_postgresql(os.environ.get("DATABASE_URL")):
        assert not databases_named_like(seen[1][1].rsplit("/", 1)[1])


def test_the_goal_run_is_the_default_load_and_runs_must_be_positive(stand_in, tmp_path):
    command = stand_in([345.0, 55.0, 4.1, False])
    assert main(["--runs", "1", "--json", str(tmp_path / "goal.json")], command=command) == 1  # a failed audit fails the bench
    assert json.loads((tmp_path / "goal.json").read_text())["results"][0]["args"][:len(GOAL_RUN)] == GOAL_RUN
    with pytest.raises(SystemExit):
        main(["--runs", "0"], command=command)
