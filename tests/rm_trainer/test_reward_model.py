import torch

from rm_trainer.loss import pairwise_loss
from rm_trainer.reward_model import RewardModel, encode_pairs, load_tokenizer, tokenize_pairs
from tests.rm_trainer.conftest import tiny_config, tiny_tokenizer


def test_forward_gives_one_reward_per_pair():
    """A batch of pairs gives one float32 reward each."""
    model = RewardModel.from_config(tiny_config()).eval()
    batch = tokenize_pairs(tiny_tokenizer(), ["word1 word2", "word3"], ["good1", "bad1 bad2 word4"], max_length=16)
    rewards = model(**batch)
    assert rewards.shape == (2,) and rewards.dtype == torch.float32


def test_padding_does_not_change_the_reward():
    """Mean pooling ignores padding: a pair scores the same alone or beside a longer one."""
    model = RewardModel.from_config(tiny_config()).eval()
    tokenizer = tiny_tokenizer()
    alone = model(**tokenize_pairs(tokenizer, ["word1"], ["good1"], max_length=32))
    padded = model(**tokenize_pairs(tokenizer, ["word1", "word2 " * 10], ["good1", "bad1 " * 10], max_length=32))
    torch.testing.assert_close(alone[0], padded[0], rtol=1e-5, atol=1e-5)


def test_a_long_prompt_is_cut_from_its_start():
    """Too long a pair loses the start of the prompt; the end of the prompt and the response survive."""
    tokenizer = tiny_tokenizer()
    prompt = " ".join(f"word{i}" for i in range(20))
    (encoding,) = encode_pairs(tokenizer, [prompt], ["good1 good2 good3"], max_length=12)
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert len(tokens) == 12
    assert tokens == ["[CLS]", "word14", "word15", "word16", "word17", "word18", "word19", "[SEP]", "good1", "good2", "good3", "[SEP]"]


def test_a_long_response_keeps_its_head():
    """A response longer than the budget keeps its first tokens, and the prompt keeps its end."""
    tokenizer = tiny_tokenizer()
    response = " ".join(f"word{i}" for i in range(20))
    (encoding,) = encode_pairs(tokenizer, ["good1 good2 good3 good4"], [response], max_length=11)
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert tokens == ["[CLS]", "good3", "good4", "[SEP]", "word0", "word1", "word2", "word3", "word4", "word5", "[SEP]"]


def test_save_and_load_round_trip(tmp_path):
    """A saved model loads with the same encoder and head."""
    model = RewardModel.from_config(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    loaded = RewardModel.from_pretrained(tmp_path).eval()
    batch = tokenize_pairs(load_tokenizer(tmp_path), ["word1"], ["good1 word2"], max_length=16)
    torch.testing.assert_close(model(**batch), loaded(**batch))


def test_a_training_step_changes_every_trained_parameter():
    """One pairwise step updates the head and the encoder."""
    torch.manual_seed(0)
    model = RewardModel.from_config(tiny_config())
    tokenizer = tiny_tokenizer()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batch = tokenize_pairs(tokenizer, ["word1"] * 2, ["good1 good2", "bad1 bad2"], max_length=16)
    rewards = model(**batch)
    pairwise_loss(rewards[:1], rewards[1:]).backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    for name, p in model.named_parameters():
        # Mean pooling leaves BERT's pooler unused; the head's bias cancels in r_chosen - r_rejected.
        if "pooler" in name or name == "head.bias":
            continue
        assert not torch.equal(before[name], p), f"{name} did not change"


def test_embedding_pools_all_tokens_and_the_response_apart():
    """The embedding is [mean of all tokens, mean of the response's tokens] of the mean of the layer outputs."""
    model = RewardModel.from_config(tiny_config()).eval()
    tokenizer = tiny_tokenizer()
    (encoding,) = encode_pairs(tokenizer, ["word1 word2"], ["good1 good2 good3"], max_length=16)
    assert encoding["response_mask"] == [0, 0, 0, 0, 1, 1, 1, 0]
    batch = tokenize_pairs(tokenizer, ["word1 word2", "word3"], ["good1 good2 good3", "bad1"], max_length=16)
    with torch.no_grad():
        states = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               token_type_ids=batch["token_type_ids"], output_hidden_states=True).hidden_states
        hidden = torch.stack(states[1:]).mean(0)
        embedding = model.embed(**batch)
    assert embedding.shape == (2, 64)
    torch.testing.assert_close(embedding[0, :32], hidden[0].mean(0))
    torch.testing.assert_close(embedding[0, 32:], hidden[0, 4:7].mean(0))
    torch.testing.assert_close(embedding[1, 32:], hidden[1, 3:4].mean(0))
