import pytest

from feedback_app.training_bridge import RunStopped
from feedback_app.training_bridge.holder import ModelHolder
from feedback_app.training_bridge.policy import dpo_train, pairs_choose, policy_export, replies_generate


def test_a_cancelled_dpo_run_becomes_run_stopped(monkeypatch, settings, tmp_path):
    """rm_trainer's DPOCancelled reaches the site as RunStopped, by type."""
    from rm_trainer import dpo

    settings.MODEL_STORE = str(tmp_path)

    def cancelled(*args, **kwargs):
        raise dpo.DPOCancelled("stopped after 1 of 4 steps")

    monkeypatch.setattr(dpo, "train_dpo", cancelled)
    with pytest.raises(RunStopped, match="stopped while it trained"):
        dpo_train(base_name="policy-base", base_path="policy/policy-base", name="policy-00002", pairs=[],
                  progress=lambda event: None, should_stop=lambda: True)


def test_policy_export_reads_the_version_under_model_store(monkeypatch, settings, tmp_path):
    """The version's relative path is resolved under MODEL_STORE before rm_trainer exports it."""
    from rm_trainer import export

    settings.MODEL_STORE = str(tmp_path)
    monkeypatch.setattr(export, "export_merged", lambda folder, out: (folder, out))
    assert policy_export(policy_path="policy/policy-00001", out="/tmp/x") == (tmp_path / "policy/policy-00001", "/tmp/x")


def test_without_a_reward_model_pairs_are_drawn_at_random_without_a_score():
    """Before the first reward model, each prompt with two distinct candidates gets a random pair and no score."""
    picks = pairs_choose(reward_name=None, reward_path=None, prompts=[("q", []), ("r", [])], candidates=[["x", "y", "z"], ["only"]],
                         strategy="uncertain", seed=1, models=ModelHolder())
    (i, j, score), none = picks
    assert i != j and {i, j} <= {0, 1, 2} and score is None and none is None


class TinyHolder(ModelHolder):
    """A holder whose every policy is the tiny offline Llama; it records the versions asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = []

    def generator(self, name, path):
        from rm_trainer.generator import Generator
        from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

        self.asked.append((name, path))
        return Generator(tiny_llama(), tiny_tokenizer(), device="cpu", bf16=False)


def test_replies_are_one_per_prompt_seeded_and_within_the_token_budget(settings):
    """Each prompt gets exactly one reply (possibly empty), the same seed gives the same replies, greedy ignores the seed."""
    settings.TRAINING_DEVICE = "cpu"
    holder = TinyHolder()
    prompts = [("Hi", []), ("Where is my parcel?", [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}]), ("Refund?", [])]
    kwargs = {"policy_name": "policy-2", "policy_path": "policy/policy-2", "prompts": prompts, "max_new_tokens": 6, "models": holder}
    sampled = replies_generate(seed=3, temperature=1.0, **kwargs)
    assert len(sampled) == 3 and all(isinstance(reply, str) for reply in sampled)
    assert all(len(reply) <= 6 for reply in sampled)  # one token per byte, and a stray byte decodes to one U+FFFD
    assert replies_generate(seed=3, temperature=1.0, **kwargs) == sampled
    assert replies_generate(seed=1, temperature=0.0, **kwargs) == replies_generate(seed=2, temperature=0.0, **kwargs)
    assert holder.asked[0] == ("policy-2", "policy/policy-2")


def test_candidates_generate_returns_texts_with_their_truncated_flags(settings):
    """Each candidate text comes with whether it hit the token budget, aligned one to one."""
    from rm_trainer.generator import Generator
    from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

    from feedback_app.training_bridge.policy import Candidates, candidates_generate

    settings.GENERATION_MAX_NEW_TOKENS, settings.GENERATION_TEMPERATURE, settings.TRAINING_DEVICE = 8, 1.0, "cpu"
    tiny = Generator(tiny_llama(), tiny_tokenizer(), device="cpu", bf16=False)

    class Holder:
        def generator(self, name, path):
            return tiny

    result = candidates_generate(policy_name="p", policy_path="policy/p", prompts=[("Hi", []), ("Refund?", [])], n=3, seed=0, models=Holder())
    assert isinstance(result, Candidates)
    texts, truncated = result
    assert [len(flags) for flags in truncated] == [len(t) for t in texts] and all(t for t in texts)
    assert all(isinstance(flag, bool) for flags in truncated for flag in flags)


def test_replies_rerank_answers_each_prompt_with_one_of_the_samples_the_reward_model_scored(settings):
    """One reply per prompt, one of the samples the reward model scored (rm_trainer's tests check which); it reads the conversation as one text."""
    from feedback_app.training_bridge.conversion import prompt_as_text
    from feedback_app.training_bridge.policy import Candidates, replies_rerank

    settings.TRAINING_DEVICE = "cpu"
    seen = []

    class LongestScorer:
        def score(self, prompt, responses):
            seen.append((prompt, list(responses)))
            return [float(len(r)) for r in responses]

    class Holder(TinyHolder):
        def scorer(self, name, path):
            self.asked.append((name, path))
            return LongestScorer()

    holder = Holder()
    context = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}]
    prompts = [("Hi", []), ("Where is my parcel?", context)]
    result = replies_rerank(policy_name="policy-2", policy_path="policy/policy-2", reward_name="rm-1", reward_path="reward/rm-1",
                            prompts=prompts, n=4, seed=3, max_new_tokens=6, temperature=1.0, models=holder)
    assert isinstance(result, Candidates) and [len(t) for t in result.texts] == [1, 1] and [len(f) for f in result.truncated] == [1, 1]
    assert ("rm-1", "reward/rm-1") in holder.asked
    as_text = [prompt_as_text(text=t, context=c) for t, c in prompts]
    scored = dict(seen)
    assert set(scored) <= set(as_text)
    for text, (best,) in zip(as_text, result.texts):
        assert best in scored[text] if text in scored else best == ""  # a prompt with no usable sample is not scored
