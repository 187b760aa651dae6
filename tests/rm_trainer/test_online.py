import pytest

from rm_trainer.config import GenerationConfig
from rm_trainer.dpo import DPOCancelled
from rm_trainer.decoding import GenerationStopped
from rm_trainer.generator import PromptItem
from rm_trainer.online import on_policy_pairs

CONFIG = GenerationConfig(seed=7)


class FakeGenerator:
    """Answers each prompt with the replies listed for it, recording each call's prompts and n."""

    def __init__(self, replies: dict[str, list[str]]) -> None:
        self.replies = replies
        self.calls = []

    def generate(self, items, n, config, should_stop=None):
        self.calls.append(([item.prompt for item in items], n))
        if should_stop is not None and should_stop():  # as the real one asks between two tokens
            raise GenerationStopped("stopped on request while sampling")
        return [self.replies[item.prompt][:n] for item in items]


def by_length(item, replies):
    """A fake reward model: longer replies are better, one point per character."""
    return [float(len(r)) for r in replies]


def test_the_best_and_worst_reply_by_the_scorer_make_the_pair():
    """Chosen is the top-scored reply, rejected the bottom one, the margin their gap; all n samples are asked for in one call."""
    generator = FakeGenerator({"q1": ["ok", "a full answer", "fine", "a"], "q2": ["yes", "no thanks"]})
    pairs = on_policy_pairs(generator, [PromptItem("q1"), PromptItem("q2")], by_length, CONFIG, n=4, min_gap=0.5)
    assert [(p.prompt, p.chosen, p.rejected, p.margin) for p in pairs] == [("q1", "a full answer", "a", 12.0), ("q2", "no thanks", "yes", 6.0)]
    assert all(p.weight == 1.0 and not p.tie for p in pairs)
    assert generator.calls == [(["q1", "q2"], 4)]


def test_near_ties_and_prompts_with_one_reply_give_no_pair():
    """A gap of at most min_gap is the reward model's noise; a prompt needs two distinct replies to make a pair."""
    generator = FakeGenerator({"tie": ["abc", "xyz"], "close": ["abc", "abcd"], "one": ["only"], "clear": ["a", "abcdef"]})
    prompts = [PromptItem(p) for p in ("tie", "close", "one", "clear")]
    pairs = on_policy_pairs(generator, prompts, by_length, CONFIG, n=4, min_gap=1.0)
    assert [p.prompt for p in pairs] == ["clear"]


def test_prompt_text_gives_the_pairs_prompt_and_the_scorer_sees_the_item():
    """The scorer gets the prompt with its context; the pair's prompt is the caller's text form of it."""
    seen = []

    def scorer(item, replies):
        seen.append(item)
        return by_length(item, replies)

    item = PromptItem("and now?", context=({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}))
    pairs = on_policy_pairs(FakeGenerator({"and now?": ["a", "abc"]}), [item], scorer, CONFIG, n=2, min_gap=0.0,
                            prompt_text=lambda i: f"{len(i.context)} turns, then {i.prompt}")
    assert seen == [item] and pairs[0].prompt == "2 turns, then and now?"


def test_prompts_are_sampled_in_chunks_with_progress_and_can_be_stopped():
    """Prompts go to the generator a chunk at a time, with progress after each; should_stop raises DPOCancelled; n < 2 is refused."""
    replies = {f"q{k}": ["a", "abc"] for k in range(5)}
    generator, events = FakeGenerator(replies), []
    pairs = on_policy_pairs(generator, [PromptItem(p) for p in replies], by_length, CONFIG, n=2, min_gap=0.0, chunk=2, progress=events.append)
    assert [len(prompts) for prompts, _ in generator.calls] == [2, 2, 1] and len(pairs) == 5
    assert [(e["step"], e["total_steps"]) for e in events] == [(2, 5), (4, 5), (5, 5)]
    assert len({p.pair_id for p in pairs}) == 5
    with pytest.raises(DPOCancelled):
        on_policy_pairs(generator, [PromptItem("q0")], by_length, CONFIG, n=2, should_stop=lambda: True)
    with pytest.raises(ValueError):
        on_policy_pairs(generator, [PromptItem("q0")], by_length, CONFIG, n=1)


def test_a_stop_asked_while_a_chunk_samples_ends_the_sampling_there():
    """The generator is given should_stop, so a stop asked in the middle of a chunk ends it there (DPOCancelled), not after it."""
    replies = {f"q{k}": ["a", "abc"] for k in range(4)}
    answers = iter([False, False, False, True])  # before the first chunk, in it, before the second, in it
    generator = FakeGenerator(replies)
    with pytest.raises(DPOCancelled, match="in the 2 prompts after 2 of 4"):
        on_policy_pairs(generator, [PromptItem(p) for p in replies], by_length, CONFIG, n=2, chunk=2, should_stop=lambda: next(answers))
    assert len(generator.calls) == 2
