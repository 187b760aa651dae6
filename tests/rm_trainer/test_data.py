import pytest

from rm_trainer.data import split_hh_dialogue

PROMPT = "\n\nHuman: How do I return a parcel?\n\nAssistant:"


def test_split_hh_dialogue_takes_the_shared_prefix_as_prompt():
    """The prompt runs to the last shared Assistant turn; the replies are what follows."""
    prompt, chosen, rejected = split_hh_dialogue(PROMPT + " Print the label and drop it off.", PROMPT + " Keep it.")
    assert prompt == PROMPT and chosen == "Print the label and drop it off." and rejected == "Keep it."


def test_split_hh_dialogue_keeps_earlier_turns_in_the_prompt():
    """A multi-turn dialogue keeps every shared turn in the prompt, even when both replies start alike."""
    history = PROMPT + " At the post office.\n\nHuman: Which one?\n\nAssistant:"
    prompt, chosen, rejected = split_hh_dialogue(history + " The nearest one.", history + " The nearest? No idea.")
    assert prompt == history and chosen == "The nearest one." and rejected == "The nearest? No idea."


def test_split_hh_dialogue_rejects_dialogues_without_a_shared_turn():
    """Two texts with no shared Assistant turn raise a clear ValueError."""
    with pytest.raises(ValueError, match="share no"):
        split_hh_dialogue("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: c\n\nAssistant: d")


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
