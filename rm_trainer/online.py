"""On-policy preference pairs: the policy's own replies, best vs worst by a reward model (online iterative DPO).

The recipe of online iterative DPO (RLHFlow's "RLHF Workflow", Dong et al. 2024): for each
prompt, sample ``n`` replies from the policy being improved, score them with the reward model,
and pair the highest-scoring reply (chosen) with the lowest (rejected). A prompt whose best and
worst differ by no more than ``min_gap`` gives no pair: a near-tie is the reward model's noise,
not a preference. Pairs on the policy's own distribution are what DPO learns from best, unlike
off-policy replies (imported data) whose log-probabilities under the policy are far from typical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rm_trainer.config import GenerationConfig
from rm_trainer.data import PreferencePair
from rm_trainer.dpo import DPOCancelled
from rm_trainer.decoding import GenerationStopped
from rm_trainer.generator import Generator, PromptItem

# (prompt, its replies) -> one reward per reply
Scorer = Callable[[PromptItem, Sequence[str]], Sequence[float]]


def on_policy_pairs(
    generator: Generator, prompts: Sequence[PromptItem], score: Scorer, config: GenerationConfig, *,
    n: int = 4, min_gap: float = 0.2, prompt_text: Callable[[PromptItem], str] | None = None,
    chunk: int = 8, progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
) -> list[PreferencePair]:
    """Return one (best, worst) pair per prompt whose ``n`` sampled replies' rewards differ by more than ``min_gap``.

    ``prompt_text`` gives a pair's prompt string (default: the item's prompt), which should be the
    form the human pairs use. Prompts are sampled ``chunk`` at a time, with a ``progress`` event
    after each chunk; ``should_stop()`` answering True before a chunk or between two sampled tokens raises ``DPOCancelled``.
    The pair's ``margin`` is the reward gap; its ``weight`` is 1.
    """
    if n < 2:
        raise ValueError("on-policy pairs need at least 2 samples per prompt")
    prompt_text = prompt_text or (lambda item: item.prompt)
    pairs = []
    for begin in range(0, len(prompts), chunk):
        if should_stop is not None and should_stop():
            raise DPOCancelled(f"stopped while sampling on-policy pairs, after {begin} of {len(prompts)} prompts")
        items = list(prompts[begin:begin + chunk])
        try:
            replies = generator.generate(items, n, config, should_stop=should_stop)  # distinct, non-empty replies per prompt
        except GenerationStopped:
            raise DPOCancelled(f"stopped while sampling on-policy pairs, in the {len(items)} prompts after {begin} of {len(prompts)}") from None
        for k, (item, texts) in enumerate(zip(items, replies)):
            if len(texts) < 2:
                continue
            rewards = [float(r) for r in score(item, texts)]
            best = max(range(len(texts)), key=rewards.__getitem__)
            worst = min(range(len(texts)), key=rewards.__getitem__)
            gap = rewards[best] - rewards[worst]
            if gap <= min_gap:
                continue
            pairs.append(PreferencePair(
                pair_id=f"online-{config.seed}-{begin + k}", prompt=prompt_text(item),
                chosen=texts[best], rejected=texts[worst], margin=gap,
            ))
        if progress is not None:
            progress({"phase": "online pairs", "step": min(begin + chunk, len(prompts)), "total_steps": len(prompts)})
    return pairs
