import pytest

PROMPT = "\n\nHuman: How do I return a parcel?\n\nAssistant:"


def write_lines(tmp_path, *lines: str, name: str = "pairs.jsonl"):
    path = tmp_path / name
    if name.endswith(".gz"):
        import gzip

        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_preference_file_reads_trl_hh_and_conversational_rows(tmp_path):
    import json

    from rm_trainer.data import read_preference_file

    path = write_lines(
        tmp_path,
        json.dumps({"prompt": "Where is my parcel?", "chosen": "It arrives Monday.", "rejected": "No idea."}),
        "",
        json.dumps({"chosen": PROMPT + " Print the label.", "rejected": PROMPT + " Keep it."}),
        json.dumps({"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
                    "rejected": [{"role": "assistant", "content": "What?"}]}),
        name="pairs.jsonl.gz",
    )
    pairs, skipped = read_preference_file(path)
    assert skipped == 0
    assert [p.pair_id for p in pairs] == ["0", "2", "3"]
    assert (pairs[0].prompt, pairs[0].chosen, pairs[0].rejected) == ("Where is my parcel?", "It arrives Monday.", "No idea.")
    assert pairs[1].chosen.strip() == "Print the label." and pairs[1].prompt.endswith("Assistant:")
    assert (pairs[2].prompt, pairs[2].chosen) == ("\n\nHuman: Hi", "\n\nAssistant: Hello!")


def test_read_preference_file_names_the_bad_line_or_skips_it(tmp_path):
    import json

    from rm_trainer.data import read_preference_file

    good = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})
    path = write_lines(tmp_path, good, json.dumps({"prompt": "p", "chosen": 3, "rejected": "b"}), "{not json", good)
    with pytest.raises(ValueError, match="line 2: .*strings"):
        read_preference_file(path)
    pairs, skipped = read_preference_file(path, skip_bad=True)
    assert ([p.pair_id for p in pairs], skipped) == (["0", "3"], 2)


def test_pairs_sharing_a_split_key_fall_on_the_same_side():
    """A pair's split key, when it has one, decides its side of the split; without one its id does."""
    from rm_trainer.data import PreferencePair, is_validation, split_pairs

    keys = [str(k) for k in range(200)]
    implied = [PreferencePair(pair_id=f"{k}-rewrite-a", prompt="p", chosen="c", rejected="r", split_key=k) for k in keys]
    train, validation = split_pairs(implied, 0.3)
    assert {p.split_key for p in validation} == {k for k in keys if is_validation(k, 0.3)} and validation and train
    plain = PreferencePair(pair_id="7", prompt="p", chosen="c", rejected="r")
    assert (plain in split_pairs([plain], 0.3)[1]) == is_validation("7", 0.3)
