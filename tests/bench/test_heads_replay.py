"""The heads-replay bench: a warm line beside a cold one on a stream of real-format pairs, and the heads' cost by history."""

import json

import pytest

from bench import heads_replay


def test_the_scale_part_times_a_cold_fit_on_everything_against_a_warm_one_on_new_pairs_and_a_bounded_replay(tmp_path, monkeypatch):
    monkeypatch.setattr(heads_replay, "default_reward_backbone", lambda: "unused")
    out = tmp_path / "out.json"
    assert heads_replay.main(["--sizes", "600", "1200", "--new", "100", "--scale-replay", "300", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["scale"]
    assert [row["history"] for row in rows] == [600, 1200]
    for row in rows:
        assert row["cold"]["trained"] == row["history"] + 100 and row["warm"]["trained"] == 400
        assert row["cold"]["epochs"] >= 1 and row["warm"]["epochs"] >= 1 and 0.5 < row["warm"]["accuracy"] <= 1


@pytest.mark.models
def test_the_stream_part_fits_a_cold_and_a_warm_line_after_each_chunk(tmp_path):
    rows = [{"prompt": f"Customer {i}: my order {i} is late.", "chosen": f"Sorry about order {i}; it ships today with tracking.",
             "rejected": "Not my problem."} for i in range(60)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out.json"
    assert heads_replay.main(["--data", str(data), "--test-size", "10", "--chunk", "20", "--replay", "10", "--orders", "1", "--sizes",
                              "--json", str(out)]) == 0
    stream = json.loads(out.read_text())["stream"]
    assert [row["pairs"] for row in stream] == [20, 40]
    assert stream[0]["warm"]["warm_from"] is None  # nothing to start from yet
    assert stream[1]["warm"]["warm_from"] == "warm-1" and stream[1]["cold"]["warm_from"] is None
    assert stream[1]["warm"]["trained"] < stream[1]["cold"]["trained"]
