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
