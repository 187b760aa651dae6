import pytest

from rm_trainer.transcript import prompt_as_text, split_dialogues, text_as_turns, turns_as_text

PROMPT = "\n\nHuman: How do I return a parcel?\n\nAssistant:"


def test_split_dialogues_takes_the_shared_prefix_as_prompt():
    """The prompt runs to the last shared Assistant turn; the replies are what follows."""
    prompt, chosen, rejected = split_dialogues(PROMPT + " Print the label and drop it off.", PROMPT + " Keep it.")
    assert prompt == PROMPT and chosen == "Print the label and drop it off." and rejected == "Keep it."


def test_split_dialogues_keeps_earlier_turns_in_the_prompt():
    """A multi-turn dialogue keeps every shared turn in the prompt, even when both replies start alike."""
    history = PROMPT + " At the post office.\n\nHuman: Which one?\n\nAssistant:"
    prompt, chosen, rejected = split_dialogues(history + " The nearest one.", history + " The nearest? No idea.")
    assert prompt == history and chosen == "The nearest one." and rejected == "The nearest? No idea."


def test_split_dialogues_rejects_dialogues_without_a_shared_turn():
    """Two texts with no shared Assistant turn raise a clear ValueError."""
    with pytest.raises(ValueError, match="share no"):
        split_dialogues("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: c\n\nAssistant: d")




def test_text_as_turns_drops_the_empty_reply_still_to_be_written():
    """A transcript ending in "Assistant:" gives its turns without an empty assistant turn."""
    assert text_as_turns("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:") == [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
    ]


def test_prompt_as_text_is_the_text_alone_without_context():
    """A prompt without conversation reads as its text, untouched."""
    assert prompt_as_text(text="Where is my parcel?", context=[]) == "Where is my parcel?"


def test_prompt_as_text_and_text_as_turns_round_trip():
    """A prompt with context becomes an HH transcript ending in the Assistant cue, and splits back into the same turns."""
    context = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"}]
    text = prompt_as_text(text="Cancel my order.", context=context)
    assert text == "\n\nHuman: Hi\n\nAssistant: Hello, how can I help?\n\nHuman: Cancel my order.\n\nAssistant:"
    assert text_as_turns(text) == [*context, {"role": "user", "content": "Cancel my order."}]


def test_turns_as_text_names_system_turns_and_title_cases_others():
    """The system role reads "System"; a role the format does not know is title-cased."""
    assert turns_as_text([{"role": "system", "content": "Be brief."}, {"role": "tool", "content": "42"}]) == "\n\nSystem: Be brief.\n\nTool: 42"
