"""The loop benchmark's bookkeeping: the judge's win rate and interval, the budgets, the held-out pairs, the rounds' runs."""

import pytest

from bench import loop_efficacy
from bench.loop_efficacy import LoopRun, Raters, win_rate


def longer(prompt, a, b):
    return "a" if len(a) > len(b) else "b" if len(b) > len(a) else "tie"


def test_win_rate_counts_ties_as_half_with_a_wilson_interval():
    result = win_rate(longer, ["p"] * 4, ["long reply", "x", "same", "longer one"], ["short", "longer", "same", "no"])
    assert (result["wins"], result["ties"], result["losses"], result["n"]) == (2, 1, 1, 4)
    assert result["win_rate"] == pytest.approx(2.5 / 4)
    low, high = result["ci"]
    assert low < 2.5 / 4 < high and 0 <= low and high <= 1


def test_quick_sets_the_small_budget_unless_a_flag_says_otherwise():
    quick = loop_efficacy.parse(["--quick"])
    assert quick.labels == loop_efficacy.QUICK["labels"] and quick.heldout == loop_efficacy.QUICK["heldout"]
    assert loop_efficacy.parse(["--quick", "--labels", "30"]).labels == 30
    assert loop_efficacy.parse([]).labels == 500


def test_an_unknown_strategy_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        loop_efficacy.parse(["--strategies", "random,greedy"])
    assert "greedy" in capsys.readouterr().err


def judge(prompt, a, b, rng):
    return longer(prompt, a, b), 1


def test_random_needs_two_candidates_the_others_four_and_extra_env_wins():
    args = loop_efficacy.parse(["--env", "SUPPLY_CANDIDATES=6"])
    assert LoopRun(loop_efficacy.parse([]), "random", judge, [], []).env()["SUPPLY_CANDIDATES"] == "2"
    assert LoopRun(loop_efficacy.parse([]), "uncertain", judge, [], []).env()["SUPPLY_CANDIDATES"] == "4"
    assert LoopRun(args, "thompson", judge, [], []).env()["SUPPLY_CANDIDATES"] == "6"


def test_held_out_pairs_leave_out_what_the_judge_ties(monkeypatch):
    run = LoopRun(loop_efficacy.parse(["--heldout-samples", "3"]), "random", judge, [], ["p1", "p2"])
    samples = {0: ["aa", "b"], 1: ["cc", "dd"], 2: ["e", "fff"]}
    monkeypatch.setattr(run, "generate", lambda policy, prompts, *, seed, mode=None: (samples[seed], "sample"))
    base, pairs, _ = run.heldout_replies()
    assert base == ["aa", "b"]
    # p1: aa/cc tie (same length), aa/e, cc/e; p2: b/dd, b/fff, dd/fff
    assert pairs == [("p1", "aa", "e"), ("p1", "cc", "e"), ("p2", "b", "dd"), ("p2", "b", "fff"), ("p2", "dd", "fff")]


class FakeApi:
    """Serves ``items`` comparisons, then 204s; records labels."""

    def __init__(self, items):
        self.items, self.labels = list(items), []

    def call(self, method, path, *, json=None, ok=(200,)):
        class Answer:
            def __init__(self, status, body=None):
                self.status_code, self.body = status, body

            def json(self):
                return self.body

        if path == "comparisons/next/":
            return Answer(200, self.items.pop(0)) if self.items else Answer(204)
        self.labels.append((path, json))
        return Answer(201, {})


def test_raters_spend_exactly_the_budget_and_count_truncated_replies_shown():
    items = [{"id": k, "prompt": "p", "left": {"text": "long one", "truncated": k == 0}, "right": {"text": "s", "truncated": False}}
             for k in range(5)]
    raters = Raters("http://unused", [], judge, seed=0)
    raters.apis = [FakeApi(items)]
    raters.spend(3, timeout=30)
    assert raters.labels == 3
    assert [path for path, _ in raters.apis[0].labels] == [f"comparisons/{k}/label/" for k in range(3)]
    assert all(body["choice"] == "left" for _, body in raters.apis[0].labels)
    assert raters.shown == [True, False, False, False, False, False]


def test_a_budget_the_supply_cannot_meet_stops_the_run():
    raters = Raters("http://unused", [], judge, seed=0)
    raters.apis = [FakeApi([])]
    with pytest.raises(SystemExit, match="only 0 of 1 labels"):
        raters.spend(1, timeout=0.5)


def test_finished_runs_are_reported_once_with_their_stage(monkeypatch):
    run = LoopRun(loop_efficacy.parse([]), "random", judge, [], [])
    runs = [{"id": 2, "kind": "policy_dpo", "status": "succeeded", "started_at": "2026-01-01T00:00:00Z",
             "finished_at": "2026-01-01T00:01:30Z", "metrics": {"promoted": True, "steps": 4}, "error": "",
             "policy_version": "policy-00002", "reward_model_version": "rm-00001"},
            {"id": 1, "kind": "reward_fast", "status": "succeeded", "started_at": "2026-01-01T00:00:00Z",
             "finished_at": "2026-01-01T00:00:10Z", "metrics": {"promoted": False}, "error": "", "policy_version": None,
             "reward_model_version": "rm-00001"}]

    class Api:
        def get(self, path):
            return runs

    run.api = Api()
    monkeypatch.setattr(loop_efficacy.time, "sleep", lambda s: None)
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(loop_efficacy.time, "monotonic", lambda: next(clock))
    seen = set()
    first = run.wait_for_runs(seen)
    assert [(r["id"], r["stage"], r["seconds"], r["promoted"]) for r in first] == [(1, "refit", 10.0, False), (2, "policy_update", 90.0, True)]
    assert first[1]["metrics"] == {"steps": 4}
    assert run.wait_for_runs(seen) == []

