"""A tiny chat tokenizer and Llama built offline, for the generator and DPO tests."""

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Return a byte-level tokenizer without merges: the 3 chat special tokens, then the 256 bytes."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(SPECIAL + alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|im_end|>", chat_template=CHAT_TEMPLATE)


def tiny_llama(*, extra_rows: int = 0, max_positions: int = 256, tie: bool = False) -> LlamaForCausalLM:
    """Return a 2-layer Llama of hidden size 32 over the tiny tokenizer's 259 ids (plus ``extra_rows`` unused ones)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=259 + extra_rows, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=max_positions, initializer_range=0.2, tie_word_embeddings=tie,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    return LlamaForCausalLM(config).eval()
