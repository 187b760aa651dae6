import dataclasses
import math

import pytest
import torch
from safetensors.torch import load_file

from rm_trainer.config import DPOConfig, GenerationConfig
from rm_trainer.data import PreferencePair
from rm_trainer.dpo import (
    DPOCancelled, batch_schedule, dpo_loss, encode_response, policy_win_rate, reply_logps, sequence_logps, train_dpo,
)
from rm_trainer.generator import Generator, PromptItem, load_causal_lm, materialise_base_policy
from rm_trainer.store import CheckpointStore
from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

CONFIG = DPOConfig(
    beta=0.5, learning_rate=3e-2, epochs=4, batch_size=4, max_length=64, lora_r=4, lora_alpha=8,
    lora_dropout=0.0, device="cpu", bf16=False, system_prompt="",
)


def yes_over_no(n: int) -> list[PreferencePair]:
    """Return pairs that prefer answering "yes" to answering "no", whatever the question."""
    return [PreferencePair(f"q{k}", f"Is {k} fine?", "yes", "no") for k in range(n)]


@pytest.fixture
def store(tmp_path_factory) -> CheckpointStore:
    source = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama().save_pretrained(source)
    tiny_tokenizer().save_pretrained(source)
    store = CheckpointStore(tmp_path_factory.mktemp("store"))
    materialise_base_policy(store, "p0", source)
    return store


def test_equal_log_ratios_give_loss_ln_2():
    zero = torch.zeros(3)
    loss, margins = dpo_loss(zero, zero, zero, zero, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))
    assert torch.equal(margins, zero)


def test_dpo_loss_weights_pairs_and_scales_by_beta():
    chosen, rejected, ref = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]), torch.zeros(2)
    loss, margins = dpo_loss(chosen, rejected, ref, ref, beta=0.5, weight=torch.tensor([1.0, 0.0]))
    assert margins.tolist() == [1.0, 0.0]
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1))))


def test_sequence_logps_count_response_tokens_only():
    model, tokenizer = tiny_llama(), tiny_tokenizer()
    ids, mask = encode_response(tokenizer, [1, 70, 71], "ok", 2, max_length=64)
    assert mask == [0, 0, 0, 1, 1, 1] and ids[-1] == 2
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        logps = sequence_logps(model, input_ids, torch.ones_like(input_ids), torch.tensor([mask], dtype=torch.float32))
        every = model(input_ids).logits.log_softmax(-1)[0, :-1].gather(-1, input_ids[0, 1:, None]).squeeze(-1)
    assert logps.item() == pytest.approx(every[2:].sum().item(), rel=1e-5)


def test_encode_response_keeps_within_max_length():
    ids, mask = encode_response(tiny_tokenizer(), list(range(3, 50)), "a long reply " * 10, 2, max_length=32)
    assert len(ids) == len(mask) == 32 and mask.count(0) == 16


def test_dpo_trains_the_adapter_and_writes_a_reloadable_version(store, recwarn):
    events = []
    result = train_dpo(store.path("policy", "p0"), yes_over_no(8), CONFIG, store=store, name="p1", progress=events.append)
    assert not [w for w in recwarn if "is_gradient_checkpointing" in str(w.message)]  # peft's use of the old alias: not in the log
    assert result.parent == "p0" and result.n_pairs == 8 and result.steps == 8
    steps = [e for e in events if e["phase"] == "dpo"]
    assert [e["step"] for e in steps] == list(range(1, 9)) and steps[-1]["total_steps"] == 8
    assert {"loss", "reward_margin", "reward_accuracy"} <= set(steps[0])
    assert [(e["step"], e["total_steps"]) for e in events if e["phase"] == "reference"] == [(1, 2), (2, 2)]
    assert result.metrics["steps"] == 8 and result.metrics["seconds_per_step"] > 0 and result.metrics["reference_seconds"] > 0
    history = result.metrics["loss_history"]
    assert history[0] == pytest.approx(math.log(2), abs=1e-4)  # the adapter starts as the identity
    assert result.metrics["loss"] < 0.6 * history[0]
    manifest = store.manifest("policy", "p1")
    assert manifest["format"] == "lora" and manifest["parent"] == "p0" and manifest["root"] == "p0"

    adapter = load_file(f"{result.path}/adapter_model.safetensors")
    assert adapter and all("lora_" in key for key in adapter)
    assert any("lora_B" in key and value.abs().sum() > 0 for key, value in adapter.items())

    parent, _ = load_causal_lm(store.path("policy", "p0"))
    child, _ = load_causal_lm(result.path)
    for (key, before), after in zip(parent.state_dict().items(), child.state_dict().values()):
        changed = not torch.equal(before, after)
        assert changed == any(m in key for m in ("q_proj", "k_proj", "v_proj", "o_proj")), key


def test_the_new_policy_prefers_the_chosen_reply(store):
    result = train_dpo(store.path("policy", "p0"), yes_over_no(8), CONFIG, store=store, name="p1")
    prompt = [PreferencePair("x", "Is 99 fine?", "yes", "no")]
    gaps = []
    for folder in (store.path("policy", "p0"), result.path):
        model, tokenizer = load_causal_lm(folder)
        gaps.append(_log_ratio(model, tokenizer, prompt[0]))
    assert gaps[1] > gaps[0] + 1.0


def test_the_reference_log_probabilities_are_computed_once_per_run(store, monkeypatch):
    """One pass of the reference (adapter off, no gradients) over all pairs before training, whatever the epochs."""
    import rm_trainer.dpo as dpo
    from peft.tuners.tuners_utils import BaseTunerLayer

    real = dpo.sequence_logps
    calls = []

    def counted(model, input_ids, *args):
        adapters_off = [m.disable_adapters for m in model.modules() if isinstance(m, BaseTunerLayer)]
        assert adapters_off and len(set(adapters_off)) == 1
        calls.append({"reference": adapters_off[0], "grad": torch.is_grad_enabled(), "rows": input_ids.shape[0]})
        return real(model, input_ids, *args)

    monkeypatch.setattr(dpo, "sequence_logps", counted)
    for epochs in (1, 4):
        calls.clear()
        result = train_dpo(store.path("policy", "p0"), yes_over_no(8), dataclasses.replace(CONFIG, epochs=epochs),
                           store=store, name=f"p-{epochs}")
        reference = [c for c in calls if c["reference"]]
        assert [c["rows"] for c in reference] == [8, 8]  # 8 pairs, 4 a batch: chosen and rejected rows
        assert not any(c["grad"] for c in reference) and all(c["grad"] for c in calls if not c["reference"])
        assert calls[:2] == reference  # before the first step
        assert len(calls) - len(reference) == result.steps == 2 * epochs
    assert result.metrics["loss_history"][0] == pytest.approx(math.log(2), abs=1e-4)  # cached values match the policy at step 0


def test_max_steps_caps_the_steps_across_epochs(store):
    """4 epochs of 2 steps, capped at 3: three steps run, and progress counts to 3."""
    events = []
    result = train_dpo(store.path("policy", "p0"), yes_over_no(8), dataclasses.replace(CONFIG, max_steps=3), store=store, name="p1",
                       progress=events.append)
    steps = [e for e in events if e["phase"] == "dpo"]
    assert result.steps == result.metrics["steps"] == len(result.metrics["loss_history"]) == 3
    assert [e["step"] for e in steps] == [1, 2, 3] and steps[-1]["total_steps"] == 3
    assert store.manifest("policy", "p1")["steps"] == 3 and result.metrics["n_pairs_seen"] == 8


def test_a_capped_run_scores_only_the_pairs_it_visits_under_the_reference(store):
    """One step of 4 pairs out of 8: the reference pass covers those 4, in one batch."""
    events = []
    result = train_dpo(store.path("policy", "p0"), yes_over_no(8), dataclasses.replace(CONFIG, max_steps=1), store=store, name="p1",
                       progress=events.append)
    assert result.steps == 1 and result.metrics["n_pairs_seen"] == 4
    assert [(e["step"], e["total_steps"]) for e in events if e["phase"] == "reference"] == [(1, 1)]


def test_the_batch_schedule_shuffles_each_epoch_and_stops_at_max_steps():
    """Each epoch visits every pair once, in batches of batch_size; max_steps keeps the first steps."""
    schedule = batch_schedule(6, dataclasses.replace(CONFIG, epochs=2, batch_size=4))
    assert [(epoch, len(batch)) for epoch, batch in schedule] == [(0, 4), (0, 2), (1, 4), (1, 2)]
    assert sorted(schedule[0][1] + schedule[1][1]) == sorted(schedule[2][1] + schedule[3][1]) == list(range(6))
    assert batch_schedule(6, dataclasses.replace(CONFIG, epochs=2, batch_size=4, max_steps=3)) == schedule[:3]


def test_beta_reaches_the_loss(store, monkeypatch):
    """Every step's loss uses DPOConfig.beta, and the run records it."""
    import rm_trainer.dpo as dpo

    real, betas = dpo.dpo_loss, []

    def recorded(*args, beta, **kwargs):
        betas.append(beta)
        return real(*args, beta=beta, **kwargs)

    monkeypatch.setattr(dpo, "dpo_loss", recorded)
    result = train_dpo(store.path("policy", "p0"), yes_over_no(4), dataclasses.replace(CONFIG, beta=0.37, epochs=2), store=store, name="p1")
    assert betas == [0.37, 0.37] and result.metrics["beta"] == 0.37


def test_a_version_can_build_on_a_lora_version(store):
    train_dpo(store.path("policy", "p0"), yes_over_no(4), CONFIG, store=store, name="p1")
    result = train_dpo(store.path("policy", "p1"), yes_over_no(4), CONFIG, store=store, name="p2")
    assert store.manifest("policy", "p2")["root"] == "p0" and store.manifest("policy", "p2")["depth"] == 2
    texts = Generator.load(result.path, device="cpu", bf16=False).generate(["Is 5 fine?"], 2, GenerationConfig(max_new_tokens=4, system_prompt=""))
    assert len(texts) == 1


def test_should_stop_cancels_and_writes_nothing(store):
    with pytest.raises(DPOCancelled):
        train_dpo(store.path("policy", "p0"), yes_over_no(8), CONFIG, store=store, name="p1", should_stop=lambda: True)
    assert store.names("policy") == ["p0"]
    assert not list((store.root / "policy").glob(".tmp-*"))


def test_the_base_must_be_a_version_of_the_store(store, tmp_path):
    with pytest.raises(ValueError):
        train_dpo(store.path("policy", "p0"), yes_over_no(2), CONFIG, store=CheckpointStore(tmp_path), name="p1")
    with pytest.raises(ValueError):
        train_dpo(store.path("policy", "p0"), [PreferencePair("t", "q", "a", "b", tie=True)], CONFIG, store=store, name="p1")


def test_policy_win_rate_counts_the_reward_models_verdicts(store):
    generator = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    config = GenerationConfig(max_new_tokens=6, system_prompt="")
    same = policy_win_rate(generator, generator, ["a", "b", "c"], lambda p, rs: [0.0 for _ in rs], config)
    assert (same.win_rate, same.ties, same.n) == (0.5, 3, 3)
    first_wins = policy_win_rate(generator, generator, ["a", "b"], lambda p, rs: [1.0, 0.0], config)
    assert (first_wins.win_rate, first_wins.wins, first_wins.losses, first_wins.mean_reward_gap) == (1.0, 2, 0, 1.0)


def test_policy_win_rate_reports_the_mean_reply_lengths_of_both_policies(store):
    """The mean tokens (stop token included, within the budget) and characters of each policy's replies come back."""
    generator = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    config = GenerationConfig(max_new_tokens=6, system_prompt="")
    prompts = ["a", "b", "c"]
    result = policy_win_rate(generator, generator, prompts, lambda p, rs: [0.0 for _ in rs], config)
    replies = generator.generate_with_stats(prompts, 1, config)
    tokens = [n for (n,) in replies.raw_lengths]
    assert 0 < result.mean_reply_tokens == pytest.approx(sum(tokens) / 3) and max(tokens) <= 6
    assert result.mean_reply_chars == pytest.approx(sum(len(r) for (r,) in replies.raw) / 3)
    assert (result.old_mean_reply_tokens, result.old_mean_reply_chars) == (result.mean_reply_tokens, result.mean_reply_chars)


def test_the_kl_of_a_policy_to_itself_is_zero(store):
    """A separately loaded copy of the same weights scores the new policy's samples alike: KL 0, per reply and per token."""
    new = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    base = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    config = GenerationConfig(max_new_tokens=8, batch_size=2, system_prompt="")
    result = policy_win_rate(new, new, ["a", "b", "c"], lambda p, rs: [0.0 for _ in rs], config, base=base)
    assert result.kl_to_base == pytest.approx(0.0, abs=1e-5)
    assert result.kl_to_base_per_token == pytest.approx(0.0, abs=1e-5)


def test_the_kl_to_a_perturbed_base_is_positive(store):
    """Noise on the base's weights makes the new policy's own samples likelier under it than under the base."""
    new = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    base = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(1)
        for parameter in base.model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    config = GenerationConfig(max_new_tokens=12, system_prompt="")
    prompts = [f"question {k}" for k in range(8)]
    result = policy_win_rate(new, new, prompts, lambda p, rs: [0.0 for _ in rs], config, base=base)
    assert result.kl_to_base > 0.5
    assert result.kl_to_base_per_token == pytest.approx(result.kl_to_base / result.mean_reply_tokens, rel=1e-6)


def test_the_kl_sums_the_log_ratios_of_the_sampled_tokens(store):
    """The estimate is the mean over replies of log π(y|x) - log π_base(y|x), the sampled ids scored after the chat prompt."""
    new = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    base = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    with torch.no_grad():
        base.model.lm_head.weight.mul_(0.5)
    config = GenerationConfig(max_new_tokens=6, system_prompt="")
    prompts = ["a", "b"]
    result = policy_win_rate(new, new, prompts, lambda p, rs: [0.0 for _ in rs], config, base=base)
    samples = new.generate_with_stats(prompts, 1, config)
    ratios = []
    for prompt_ids, (reply,) in zip(new.prompt_ids([PromptItem(p) for p in prompts], config), samples.raw_ids):
        ids = torch.tensor([prompt_ids + reply])
        with torch.no_grad():
            logps = [m(ids).logits.log_softmax(-1)[0, len(prompt_ids) - 1:-1].gather(-1, torch.tensor(reply)[:, None]).sum().item()
                     for m in (new.model, base.model)]
        ratios.append(logps[0] - logps[1])
    assert result.kl_to_base == pytest.approx(sum(ratios) / 2, rel=1e-4)
    assert reply_logps(new.model, [[1, 70]], [[71, 2]], new.device, 1)[0] < 0


def test_without_a_base_no_kl_is_estimated(store):
    generator = Generator.load(store.path("policy", "p0"), device="cpu", bf16=False)
    result = policy_win_rate(generator, generator, ["a"], lambda p, rs: [0.0 for _ in rs], GenerationConfig(max_new_tokens=4, system_prompt=""))
    assert (result.kl_to_base, result.kl_to_base_per_token) == (None, None)


def _log_ratio(model, tokenizer, pair: PreferencePair) -> float:
    from rm_trainer.generator import PromptItem, chat_prompt_ids

    prompt = chat_prompt_ids(tokenizer, PromptItem(pair.prompt), "")
    values = []
    for reply in (pair.chosen, pair.rejected):
        ids, mask = encode_response(tokenizer, prompt, reply, 2, 64)
        input_ids = torch.tensor([ids])
        with torch.no_grad():
            values.append(sequence_logps(model, input_ids, torch.ones_like(input_ids), torch.tensor([mask], dtype=torch.float32)).item())
    return values[0] - values[1]
