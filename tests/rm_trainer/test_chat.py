"""Greedy chat replies of a tiny Llama built offline: one per conversation, the same every time and whatever the batch."""

from rm_trainer.chat import chat_replies
from rm_trainer.generator import Generator
from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer


def test_one_greedy_reply_per_conversation():
    generator = Generator(tiny_llama(max_positions=1024), tiny_tokenizer(), device="cpu", bf16=False)
    conversations = [[{"role": "system", "content": "Judge."}, {"role": "user", "content": "Which is better, 1 or 2?"}],
                     [{"role": "user", "content": "Hi"}]]
    first = chat_replies(generator, conversations, max_new_tokens=6)
    assert len(first) == 2 and all(isinstance(reply, str) for reply in first)
    assert chat_replies(generator, conversations, max_new_tokens=6) == first
    assert chat_replies(generator, conversations[:1], max_new_tokens=6) == first[:1]
