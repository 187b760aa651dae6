import pytest

from rm_trainer.config import GenerationConfig
from rm_trainer.generator import Generator, GenerationResult, PromptItem
from rm_trainer.rerank import BestOfN, best_of_n
from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

CONFIG = GenerationConfig(seed=3)


class StubGenerator:
    """Answers each prompt with the (text, truncated) samples listed for it, cleaned as the real generator cleans them."""

    def __init__(self, samples: dict[str, list[tuple[str, bool]]]) -> None:
        self.samples = samples
        self.calls = []

    def generate_with_stats(self, items, n, config, should_stop=None):
        self.calls.append(([item.prompt for item in items], n, config.seed))
        texts, truncated = [], []
        for item in items:
            kept = {}
            for text, cut in self.samples[item.prompt][:n]:
                if text and text not in kept:
                    kept[text] = cut
            texts.append(list(kept))
            truncated.append(list(kept.values()))
        return GenerationResult(texts=texts, raw=texts, prompt_tokens=0, new_tokens=0, seconds=0.0, truncated=truncated)


def by_length(item, replies):
    """A stub reward model: one point per character."""
    return [float(len(r)) for r in replies]


def test_the_reply_the_scorer_likes_best_is_chosen_per_prompt_in_order():
    """All prompts are sampled in one call with n; each gets its top-scored reply, its reward and how many competed."""
    generator = StubGenerator({"q1": [("ok", False), ("a full answer", False), ("fine", False)], "q2": [("yes", False), ("no thanks", False)]})
    chosen = best_of_n(generator, [PromptItem("q1"), PromptItem("q2")], 3, by_length, CONFIG)
    assert chosen == [BestOfN("a full answer", 13.0, False, 3), BestOfN("no thanks", 9.0, False, 2)]
    assert generator.calls == [(["q1", "q2"], 3, 3)]


def test_a_complete_reply_beats_a_higher_scored_truncated_one():
    """The truncated reply scores higher but is cut off; the best complete one is chosen."""
    generator = StubGenerator({"q": [("a very long reply that was cut", True), ("short", False), ("mid one", False)]})
    (chosen,) = best_of_n(generator, [PromptItem("q")], 3, by_length, CONFIG)
    assert (chosen.text, chosen.truncated, chosen.n_candidates) == ("mid one", False, 3)


def test_when_every_reply_is_truncated_the_best_of_them_is_chosen_and_marked():
    generator = StubGenerator({"q": [("cut short", True), ("cut much later", True)]})
    (chosen,) = best_of_n(generator, [PromptItem("q")], 2, by_length, CONFIG)
    assert (chosen.text, chosen.truncated) == ("cut much later", True)


def test_empty_and_repeated_samples_do_not_compete_and_no_usable_sample_gives_an_empty_reply():
    """Duplicates count once; a prompt whose every sample was empty gets "" with no reward and is not scored."""
    scored = []

    def scorer(item, replies):
        scored.append((item.prompt, list(replies)))
        return by_length(item, replies)

    generator = StubGenerator({"dup": [("same", False), ("same", False), ("", False)], "empty": [("", False), ("", True)]})
    chosen = best_of_n(generator, [PromptItem("dup"), PromptItem("empty")], 3, scorer, CONFIG)
    assert chosen == [BestOfN("same", 4.0, False, 1), BestOfN("", None, False, 0)]
    assert scored == [("dup", ["same"])]


def test_ties_go_to_the_earlier_sample_and_the_scorer_sees_the_item_with_its_context():
    seen = []
    item = PromptItem("and now?", context=({"role": "user", "content": "hi"},))

    def flat(prompt, replies):
        seen.append(prompt)
        return [1.0] * len(replies)

    (chosen,) = best_of_n(StubGenerator({"and now?": [("first", False), ("second", False)]}), [item], 2, flat, CONFIG)
    assert chosen.text == "first" and seen == [item]


def test_bad_n_and_a_scorer_that_miscounts_are_refused():
    generator = StubGenerator({"q": [("a", False), ("bb", False)]})
    with pytest.raises(ValueError, match="n >= 1"):
        best_of_n(generator, [PromptItem("q")], 0, by_length, CONFIG)
    with pytest.raises(ValueError, match="1 rewards for 2 replies"):
        best_of_n(generator, [PromptItem("q")], 2, lambda item, replies: [0.0], CONFIG)


def test_a_real_generator_gives_one_of_its_own_samples(tmp_path):
    """With the tiny offline model: the chosen reply is one of the prompt's distinct samples, with that sample's truncated flag."""
    tiny_llama(extra_rows=5, max_positions=512, tie=True).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    generator = Generator.load(tmp_path, device="cpu", bf16=False)
    config = GenerationConfig(max_new_tokens=6, temperature=1.0, top_p=1.0, top_k=0, system_prompt="Be brief.", seed=1)
    samples = generator.generate_with_stats([PromptItem("Hi")], 4, config)
    (chosen,) = best_of_n(generator, [PromptItem("Hi")], 4, by_length, config)
    flags = dict(zip(samples.texts[0], samples.truncated[0]))
    assert chosen.n_candidates == len(flags) and chosen.text in flags and chosen.truncated == flags[chosen.text]
