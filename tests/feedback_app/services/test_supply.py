"""The comparison supply with a stand-in generator (the real one runs in tests/scenarios/test_loop_with_real_models.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app import training_bridge
from feedback_app.models import Comparison, PolicyVersion, Prompt
from feedback_app.services.supply import arena_opponent, comparisons_supply, prompts_claim_for_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_generation(monkeypatch):
    calls = []

    def generate(*, policy_name, policy_path, prompts, n, seed, models):
        calls.append((policy_name, len(prompts), n))
        return [[f"{policy_name} reply {k} to {text}" for k in range(n)] for text, _ in prompts]

    monkeypatch.setattr(training_bridge, "candidates_generate", generate)
    return calls


@pytest.fixture
def policies(db):
    base = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="retired")
    new = PolicyVersion.objects.create(name="policy-00002", path="policy/policy-00002", status="active", parent=base)
    return base, new


def test_without_a_reward_model_pairs_are_random_and_recorded(settings, fake_generation, policies):
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS, settings.SUPPLY_CANDIDATES = 3, 8, 4
    for i in range(5):
        Prompt.objects.create(text=f"question {i}")
    from feedback_app.selectors.quality import studio_settings

    config = studio_settings()
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
    from feedback_app.selectors.quality import studio_settings

    config = studio_settings()
    config.arena_share = 1.0
    config.save()
    assert comparisons_supply() == 4
    for c in Comparison.objects.all():
        assert c.kind == "arena" and c.selection_strategy == "arena"
        assert c.response_a.policy_version == new and c.response_b.policy_version == base
    assert {(name, n) for name, _, n in fake_generation} == {("policy-00002", 1), ("policy-base", 1)}


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


def test_a_pruned_policy_is_never_an_arena_opponent(db):
    """Retention removed a pruned policy's weights, so the arena draws only from the others."""
    import random

    PolicyVersion.objects.create(name="policy-gone", path="policy/policy-gone", status="pruned")
    kept = PolicyVersion.objects.create(name="policy-kept", path="policy/policy-kept", status="retired")
    new = PolicyVersion.objects.create(name="policy-new", path="policy/policy-new", status="active")
    rng = random.Random(0)
    assert {arena_opponent(policy=new, rng=rng) for _ in range(20)} == {kept}
