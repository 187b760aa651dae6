"""Sample replies of a policy version: defaults, refusals, and the round trip through a worker (eager here; the model is a fake)."""

import pytest

from feedback_app import tasks, training_bridge
from feedback_app.models import PolicyVersion, RewardModelVersion
from feedback_app.services.generation import (
    GenerationUnavailable,
    NoRewardModel,
    PolicyNotFound,
    PolicyPruned,
    generation_options,
    policy_replies,
    policy_replies_remote,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_replies(monkeypatch):
    """Replace the bridge: each reply repeats its prompt; every call's arguments are recorded."""
    calls = []

    def replies(*, policy_name, policy_path, prompts, seed, max_new_tokens, temperature, models):
        calls.append({"name": policy_name, "path": policy_path, "prompts": prompts, "seed": seed, "max_new_tokens": max_new_tokens,
                      "temperature": temperature, "models": models})
        return [f"re: {text}" for text, _ in prompts]

    monkeypatch.setattr(training_bridge, "replies_generate", replies)
    return calls


@pytest.fixture
def policy():
    return PolicyVersion.objects.create(name="policy-3", path="policy/policy-3", status="candidate")


def test_options_default_to_seed_0_and_the_sites_sampling_settings(settings):
    """Options left out take seed 0 and GENERATION_MAX_NEW_TOKENS / GENERATION_TEMPERATURE; given ones are kept."""
    settings.GENERATION_MAX_NEW_TOKENS, settings.GENERATION_TEMPERATURE = 40, 0.9
    assert generation_options() == {"seed": 0, "max_new_tokens": 40, "temperature": 0.9}
    assert generation_options(seed=5, max_new_tokens=8, temperature=0.0) == {"seed": 5, "max_new_tokens": 8, "temperature": 0.0}


def test_replies_come_one_per_prompt_in_order_with_their_context(policy, fake_replies):
    """Any version that still has its weights answers (a candidate here); the context reaches the policy as turns."""
    context = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "yes?"}]
    result = policy_replies(policy_name="policy-3", prompts=[{"prompt": "a"}, {"prompt": "b", "context": context}], seed=2)
    assert result == {"policy": "policy-3", "mode": "sample", "reward_model": None, "replies": ["re: a", "re: b"]}
    (call,) = fake_replies
    assert call["path"] == "policy/policy-3" and call["prompts"] == [("a", []), ("b", context)] and call["seed"] == 2
    assert isinstance(call["models"], training_bridge.ModelHolder)


def test_unknown_and_pruned_policies_are_refused_before_any_model_runs(fake_replies):
    """An unknown name is PolicyNotFound; a pruned version (its weights are gone) is PolicyPruned, on the web side already."""
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="pruned")
    with pytest.raises(PolicyNotFound, match="no policy version named 'nope'"):
        policy_replies(policy_name="nope", prompts=[{"prompt": "a"}])
    with pytest.raises(PolicyPruned, match="policy-1 was pruned"):
        policy_replies_remote(policy_name="policy-1", prompts=[{"prompt": "a"}], timeout=5)
    assert fake_replies == []


def test_remote_replies_come_back_from_the_worker_with_the_worker_holder(policy, fake_replies):
    """The web side fills in the defaults and the worker's task answers with its shared holder."""
    result = policy_replies_remote(policy_name="policy-3", prompts=[{"prompt": "Where is it?"}], temperature=0.0, timeout=5)
    assert result == {"policy": "policy-3", "mode": "sample", "reward_model": None, "replies": ["re: Where is it?"]}
    assert fake_replies[0]["temperature"] == 0.0 and fake_replies[0]["models"] is tasks.policy_generate.models


def test_a_version_pruned_while_the_request_waited_is_refused_by_the_worker(policy, monkeypatch):
    """The worker's {"error", "code"} becomes the same exception on the web side."""
    send = tasks.policy_generate.delay

    def pruned_then_sent(*args):
        PolicyVersion.objects.filter(pk=policy.pk).update(status="pruned")  # retention ran after the web side's check
        return send(*args)

    monkeypatch.setattr(tasks.policy_generate, "delay", pruned_then_sent)
    with pytest.raises(PolicyPruned, match="policy-3 was pruned"):
        policy_replies_remote(policy_name="policy-3", prompts=[{"prompt": "a"}], timeout=5)


def test_replies_that_no_worker_answers_are_unavailable(policy, monkeypatch):
    """A wait that times out names the timeout and the queue."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    class Unanswered:
        def get(self, *, timeout):
            raise CeleryTimeout(f"waited {timeout}")

    monkeypatch.setattr(tasks.policy_generate, "delay", lambda *args: Unanswered())
    with pytest.raises(GenerationUnavailable, match=r"^no worker answered within 60 s \(queue 'score'\)$"):
        policy_replies_remote(policy_name="policy-3", prompts=[{"prompt": "a"}], timeout=60)


def test_a_worker_that_fails_makes_replies_unavailable_with_its_error(policy, monkeypatch):
    """An exception in the worker comes back as GenerationUnavailable naming it."""
    def broken(**kwargs):
        raise OSError("policy/policy-3 is not a model folder")

    monkeypatch.setattr(training_bridge, "replies_generate", broken)
    with pytest.raises(GenerationUnavailable, match="OSError: policy/policy-3 is not a model folder"):
        policy_replies_remote(policy_name="policy-3", prompts=[{"prompt": "a"}], timeout=5)


@pytest.fixture
def fake_rerank(monkeypatch):
    """Replace the bridge's best of n: each reply names n and the reward model; every call's arguments are recorded."""
    calls = []

    def rerank(*, policy_name, policy_path, reward_name, reward_path, prompts, n, seed, max_new_tokens, temperature, models):
        calls.append({"name": policy_name, "reward": (reward_name, reward_path), "n": n, "seed": seed, "max_new_tokens": max_new_tokens,
                      "temperature": temperature, "models": models})
        return training_bridge.Candidates(texts=[[f"best of {n} by {reward_name}: {text}"] if text else [] for text, _ in prompts],
                                          truncated=[[False] if text else [] for text, _ in prompts])

    monkeypatch.setattr(training_bridge, "replies_rerank", rerank)
    return calls


def test_a_rerank_version_answers_with_the_best_of_rerank_samples_by_the_active_reward_model(policy, fake_replies, fake_rerank, settings):
    """Its own mode by default, through a worker; the answer names the mode and the reward model; the options reach it."""
    settings.RERANK_SAMPLES = 5
    PolicyVersion.objects.filter(pk=policy.pk).update(serving_mode="rerank")
    RewardModelVersion.objects.create(name="rm-4", path="reward/rm-4", status="active")
    result = policy_replies_remote(policy_name="policy-3", prompts=[{"prompt": "Where is it?"}], seed=9, timeout=5)
    assert result == {"policy": "policy-3", "mode": "rerank", "reward_model": "rm-4", "replies": ["best of 5 by rm-4: Where is it?"]}
    (call,) = fake_rerank
    assert call["reward"] == ("rm-4", "reward/rm-4") and (call["n"], call["seed"]) == (5, 9) and call["models"] is tasks.policy_generate.models
    assert fake_replies == []
    sampled = policy_replies_remote(policy_name="policy-3", prompts=[{"prompt": "Where is it?"}], mode="sample", timeout=5)
    assert (sampled["mode"], sampled["reward_model"], sampled["replies"]) == ("sample", None, ["re: Where is it?"])


def test_any_version_can_be_asked_to_rerank_and_an_empty_best_is_an_empty_reply(policy, fake_rerank):
    RewardModelVersion.objects.create(name="rm-4", path="reward/rm-4", status="active")
    result = policy_replies(policy_name="policy-3", prompts=[{"prompt": "a"}, {"prompt": ""}], mode="rerank")
    assert result["mode"] == "rerank" and result["replies"] == ["best of 4 by rm-4: a", ""]


def test_rerank_without_a_reward_model_is_refused_when_asked_for_and_samples_when_it_is_the_versions_own_mode(policy, fake_replies, fake_rerank):
    """An explicit rerank is refused on the web side before any worker is asked; the version's own rerank falls back to sampling and says so."""
    PolicyVersion.objects.filter(pk=policy.pk).update(serving_mode="rerank")
    with pytest.raises(NoRewardModel, match="no.*reward model|none is active"):
        policy_replies_remote(policy_name="policy-3", prompts=[{"prompt": "a"}], mode="rerank", timeout=5)
    assert fake_replies == [] and fake_rerank == []
    result = policy_replies_remote(policy_name="policy-3", prompts=[{"prompt": "a"}], timeout=5)
    assert (result["mode"], result["reward_model"], result["replies"]) == ("sample", None, ["re: a"])
