"""The comparison supply with a stand-in generator (the real one runs in tests/scenarios/test_loop_with_real_models.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app import training_bridge
from feedback_app.models import Comparison, PolicyVersion, Prompt
from feedback_app.services.supply import arena_opponent, candidate_pool, comparisons_supply, prompts_claim_for_generation
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


@pytest.fixture
def cut_off():
    """Which candidates the stand-in generator marks truncated: a set of (policy name, candidate index)."""
    return set()


@pytest.fixture
def fake_generation(monkeypatch, cut_off):
    calls = []

    def generate(*, policy_name, policy_path, prompts, n, seed, models, should_stop=None):
        calls.append((policy_name, len(prompts), n))
        if should_stop is not None and should_stop():  # as the real one asks after each sampled token
            raise training_bridge.GenerationStopped("stopped on request while sampling")
        texts = [[f"{policy_name} reply {k} to {text}" for k in range(n)] for text, _ in prompts]
        return training_bridge.Candidates(texts=texts, truncated=[[(policy_name, k) in cut_off for k in range(n)] for _ in prompts])

    monkeypatch.setattr(training_bridge, "candidates_generate", generate)
    return calls


def _standard_only():
    
    config = campaign_default()
    config.arena_share = 0.0
    config.save()


@pytest.fixture
def policies(db):
    base = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="retired")
    new = PolicyVersion.objects.create(name="policy-00002", path="policy/policy-00002", status="active", parent=base)
    return base, new


def test_without_a_reward_model_pairs_are_random_and_recorded(settings, fake_generation, policies):
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS, settings.SUPPLY_CANDIDATES = 3, 8, 4
    for i in range(5):
        Prompt.objects.create(text=f"question {i}")
    
    config = campaign_default()
    config.arena_share = 0.0
    config.save()
    assert comparisons_supply() == 3
    for c in Comparison.objects.all():
        assert c.policy_version.name == "policy-00002" and c.reward_model_version is None
        assert c.selection_strategy == "random" and c.kind == "standard" and c.response_a.text != c.response_b.text
    assert Prompt.objects.filter(generation_lease_until__isnull=False).count() == 0  # leases released
    assert comparisons_supply() == 0  # target met


def test_arena_share_pits_the_new_policy_against_an_earlier_one(settings, fake_generation, policies):
    base, new = policies
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS = 4, 4
    for i in range(4):
        Prompt.objects.create(text=f"question {i}")
    
    config = campaign_default()
    config.arena_share = 1.0
    config.save()
    assert comparisons_supply() == 4
    for c in Comparison.objects.all():
        assert c.kind == "arena" and c.selection_strategy == "arena"
        assert c.response_a.policy_version == new and c.response_b.policy_version == base
    assert {(name, n) for name, _, n in fake_generation} == {("policy-00002", 1), ("policy-base", 1)}


def test_the_pair_is_chosen_among_complete_candidates_when_two_are_complete(settings, fake_generation, cut_off, policies):
    """Candidates 0 and 1 hit the token budget; every pair shown is 2 vs 3, both complete."""
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS, settings.SUPPLY_CANDIDATES = 6, 8, 4
    cut_off.update({("policy-00002", 0), ("policy-00002", 1)})
    for i in range(6):
        Prompt.objects.create(text=f"question {i}")
    _standard_only()
    assert comparisons_supply() == 6
    for c in Comparison.objects.all():
        assert {c.response_a.text.split()[2], c.response_b.text.split()[2]} == {"2", "3"}
        assert not c.response_a.truncated and not c.response_b.truncated


def test_with_fewer_than_two_complete_candidates_the_pair_comes_from_all_and_keeps_its_flags(settings, fake_generation, cut_off, policies):
    """One complete reply of two: the pair is still made, and its truncated reply is marked."""
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS, settings.SUPPLY_CANDIDATES = 3, 8, 2
    cut_off.add(("policy-00002", 1))
    for i in range(3):
        Prompt.objects.create(text=f"question {i}")
    _standard_only()
    assert comparisons_supply() == 3
    for c in Comparison.objects.all():
        flags = {c.response_a.text.split()[2]: c.response_a.truncated, c.response_b.text.split()[2]: c.response_b.truncated}
        assert flags == {"0": False, "1": True}


def test_a_task_makes_rounds_until_the_target_while_its_time_lasts(settings, fake_generation, policies):
    """Rounds of 2 toward a target of 5: a task goes on round after round (the last makes 1), and stops once the target
    is met; with SUPPLY_TASK_SECONDS 0 a task makes one round, and with no time left after a round it starts no other."""
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS, settings.SUPPLY_CANDIDATES = 5, 2, 2
    for i in range(12):
        Prompt.objects.create(text=f"question {i}")
    _standard_only()
    settings.SUPPLY_TASK_SECONDS = 600
    assert comparisons_supply() == 5
    assert [n for _, n, _ in fake_generation] == [2, 2, 1]
    assert comparisons_supply() == 0 and len(fake_generation) == 3  # the target met: no round
    Comparison.objects.update(status=Comparison.Status.COMPLETE)
    settings.SUPPLY_TASK_SECONDS = 0
    assert comparisons_supply() == 2 and len(fake_generation) == 4


def test_candidate_pool_prefers_complete_replies():
    assert candidate_pool([True, False, True, False]) == [1, 3]
    assert candidate_pool([True, False, True]) == [0, 1, 2]
    assert candidate_pool([True, True]) == [0, 1]
    assert candidate_pool([]) == []


def test_arena_replies_carry_their_truncated_flags(settings, fake_generation, cut_off, policies):
    """The base policy's arena reply hit the budget; the new policy's did not."""
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS = 2, 2
    cut_off.add(("policy-base", 0))
    for i in range(2):
        Prompt.objects.create(text=f"question {i}")
    
    config = campaign_default()
    config.arena_share = 1.0
    config.save()
    assert comparisons_supply() == 2
    for c in Comparison.objects.all():
        assert (c.response_a.truncated, c.response_b.truncated) == (False, True)


def test_claimed_prompts_are_not_claimed_twice(policies):
    _, new = policies
    for i in range(3):
        Prompt.objects.create(text=f"question {i}")
    now = timezone.now()
    first = prompts_claim_for_generation(policy=new, limit=2, now=now)
    second = prompts_claim_for_generation(policy=new, limit=5, now=now)
    assert len(first) == 2 and len(second) == 1 and not {p.pk for p in first} & {p.pk for p in second}


def test_a_lease_left_by_a_killed_worker_expires(settings, fake_generation, policies):
    """A worker killed mid-round never releases its leases; after GENERATION_LEASE the prompts are supplied again."""
    from feedback_app.services.supply import GENERATION_LEASE

    settings.SUPPLY_OPEN_TARGET = 5
    prompt = Prompt.objects.create(text="question")
    now = timezone.now()
    assert [p.pk for p in prompts_claim_for_generation(policy=policies[1], limit=1, now=now)] == [prompt.pk]  # then the worker dies
    assert comparisons_supply(now=now + GENERATION_LEASE / 2) == 0  # still leased to the dead worker
    assert comparisons_supply(now=now + GENERATION_LEASE + timedelta(seconds=1)) == 1
    assert Comparison.objects.get().prompt == prompt
    prompt.refresh_from_db()
    assert prompt.generation_lease_until is None


def test_a_round_asked_to_stop_while_sampling_stores_nothing_gives_its_prompts_back_and_starts_no_other(settings, fake_generation, policies):
    """The worker is stopping: the round's sampling ends (the generator was given should_stop), nothing is stored, its
    prompts are free at once rather than after GENERATION_LEASE, and no other campaign's round starts."""
    from feedback_app.services.campaigns import campaign_create

    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS = 3, 8
    _standard_only()
    for i in range(3):
        Prompt.objects.create(text=f"question {i}")
    other = campaign_create(slug="billing", name="Billing", parent=None, actor=None)
    Prompt.objects.create(campaign=other, text="billing question")
    stopping = []
    assert comparisons_supply(should_stop=lambda: bool(stopping) or stopping.append(True)) == 0  # False before the round, True in it
    assert len(fake_generation) == 1  # one round sampled, and stopped; the other campaign's never began
    assert not Comparison.objects.exists() and not Prompt.objects.filter(generation_lease_until__isnull=False).exists()
    assert comparisons_supply(should_stop=lambda: False) == 4  # the next round, the same prompts and the other campaign's


def test_a_pruned_policy_is_never_an_arena_opponent(db):
    """Retention removed a pruned policy's weights, so the arena draws only from the others."""
    import random

    PolicyVersion.objects.create(name="policy-gone", path="policy/policy-gone", status="pruned")
    kept = PolicyVersion.objects.create(name="policy-kept", path="policy/policy-kept", status="retired")
    new = PolicyVersion.objects.create(name="policy-new", path="policy/policy-new", status="active")
    rng = random.Random(0)
    assert {arena_opponent(policy=new, rng=rng) for _ in range(20)} == {kept}


@pytest.fixture
def fake_rerank(monkeypatch):
    """Replace the bridge's best of n: each reply names its policy, n and the reward model; policy-base's hit the budget."""
    calls = []

    def rerank(*, policy_name, policy_path, reward_name, reward_path, prompts, n, seed, max_new_tokens, temperature, models, should_stop=None):
        calls.append((policy_name, reward_name, n))
        texts = [[f"{policy_name} best of {n} by {reward_name} for {text}"] for text, _ in prompts]
        return training_bridge.Candidates(texts=texts, truncated=[[policy_name == "policy-base"] for _ in prompts])

    monkeypatch.setattr(training_bridge, "replies_rerank", rerank)
    return calls


def _arena_only(settings, n):
    
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS = n, n
    for i in range(n):
        Prompt.objects.create(text=f"question {i}")
    config = campaign_default()
    config.arena_share = 1.0
    config.save()


def test_a_rerank_policy_and_its_opponent_answer_with_the_best_of_n_by_the_active_reward_model(settings, fake_generation, fake_rerank, policies):
    """Both sides are reranked by the same reward model (the votes compare weights, not tiers); each comparison records
    the mode and the reward model; nothing is sampled singly."""
    from feedback_app.models import RewardModelVersion

    base, new = policies
    new.serving_mode = "rerank"
    new.save()
    rm = RewardModelVersion.objects.create(name="rm-7", path="reward/rm-7", status="active")
    settings.RERANK_SAMPLES = 3
    _arena_only(settings, 2)
    assert comparisons_supply() == 2
    assert sorted(set(fake_rerank)) == [("policy-00002", "rm-7", 3), ("policy-base", "rm-7", 3)] and fake_generation == []
    for c in Comparison.objects.all():
        assert (c.kind, c.policy_mode, c.reward_model_version, c.policy_version) == ("arena", "rerank", rm, new)
        assert c.response_a.text.startswith("policy-00002 best of 3 by rm-7") and c.response_b.policy_version == base
        assert (c.response_a.truncated, c.response_b.truncated) == (False, True)


def test_a_rerank_policy_samples_while_no_reward_model_is_active_and_says_so(settings, fake_generation, fake_rerank, policies):
    _, new = policies
    new.serving_mode = "rerank"
    new.save()
    _arena_only(settings, 2)
    assert comparisons_supply() == 2 and fake_rerank == []
    assert {(c.policy_mode, c.reward_model_version) for c in Comparison.objects.all()} == {("sample", None)}


def test_a_sampling_policy_records_sample_on_its_arena_comparisons_and_standard_ones_record_no_mode(
        settings, fake_generation, fake_rerank, policies, monkeypatch):
    """A reward model being active changes nothing for a "sample" policy's arena replies; standard pairs keep policy_mode ""."""
    from feedback_app.models import RewardModelVersion

    RewardModelVersion.objects.create(name="rm-7", path="reward/rm-7", status="active")
    _arena_only(settings, 2)
    assert comparisons_supply() == 2 and fake_rerank == []
    assert {(c.policy_mode, c.reward_model_version_id) for c in Comparison.objects.all()} == {("sample", None)}
    Comparison.objects.all().delete()
    _standard_only()
    settings.SUPPLY_CANDIDATES = 2
    monkeypatch.setattr(training_bridge, "pairs_choose", lambda **kwargs: [(0, 1, 0.5)] * len(kwargs["candidates"]))
    assert comparisons_supply() == 2
    assert {c.policy_mode for c in Comparison.objects.all()} == {""}


def test_with_ai_feedback_the_reward_model_judge_routes_new_comparisons_before_they_are_offered(
        settings, fake_generation, policies, monkeypatch, make_judge, make_audits):
    """Each standard comparison gets the judge's verdict in the supply round: confident ones come out AI-labelled, the
    others open for people; none is left waiting, and the supply counts only open ones towards its target."""
    from feedback_app.models import PreferenceLabel, RewardModelVersion

    _standard_only()
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS, settings.SUPPLY_CANDIDATES = 4, 4, 2
    settings.AI_MIN_AUDITS, settings.AI_AUDIT_SHARE = 1, 0.0
    settings.SUPPLY_TASK_SECONDS = 0  # one round: the judge's verdicts on its four
    rm = RewardModelVersion.objects.create(name="rm-7", path="reward/rm-7", status="active")
    judge = make_judge("rm", kind="reward_model")
    judge.versions.update(version="rm-7")
    make_audits(judge, n=1, agree=1)
    before = set(Comparison.objects.values_list("pk", flat=True))
    for i in range(4):
        Prompt.objects.create(text=f"question {i}")
    monkeypatch.setattr(training_bridge, "pairs_choose", lambda **kwargs: [(0, 1, 0.5)] * len(kwargs["candidates"]))
    probs = iter([(0.97, 0.0), (0.6, 0.0), (0.03, 0.0), (0.55, 0.2)])
    monkeypatch.setattr(training_bridge, "comparisons_rm_judge", lambda *, version_name, version_path, items, models: [next(probs) for _ in items])
    assert comparisons_supply() == 4
    made = Comparison.objects.exclude(pk__in=before).order_by("id")
    assert [(c.route, c.status) for c in made] == [("ai", "complete"), ("people", "open"), ("ai", "complete"), ("people", "open")]
    assert [label.winner for label in PreferenceLabel.objects.filter(comparison__in=made)] == ["a", "b"]
    assert made.first().reward_model_version == rm
