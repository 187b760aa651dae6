"""A policy update: its gates, its held-out prompts, and the human and on-policy pairs it trains on (the DPO run itself runs in tests/scenarios/test_loop_with_real_models.py)."""

import pytest

from feedback_app import training_bridge
from feedback_app.models import ImportBatch, Prompt, RewardModelVersion
from feedback_app.services.policy_update import HELD_OUT_FRACTION, prompts_held_out
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _every_fifth_prompt_held_out(monkeypatch):
    """Hold out the prompts whose id is a multiple of 5: the hash split depends on the ids, which on PostgreSQL depend on
    every test that ran before, and a few prompts could all fall on the training side (0.8 ** 20 is 1%)."""
    split = training_bridge.is_validation

    def every_fifth(key: str, fraction: float) -> bool:
        kind, _, number = key.rpartition("-")
        return int(number) % 5 == 0 if kind == "prompt" and number.isdigit() else split(key, fraction)

    monkeypatch.setattr(training_bridge, "is_validation", every_fifth)


def test_policy_dpo_needs_a_reward_model(synthetic_preferences, run_now):
    synthetic_preferences(4)
    run = run_now("policy_dpo")
    assert run.status == "failed" and "needs an active reward model" in run.error


def test_the_held_out_prompts_are_rm_trainers_validation_split_of_the_published_ones():
    """The split follows is_validation on "prompt-<id>", in id order, up to ``limit``; staged imports are left out."""
    staged = ImportBatch.objects.create(kind="prompts", filename="staged.jsonl", sha256="staged", published=False)
    prompts = [Prompt.objects.create(text=f"q{i}", source="test") for i in range(60)]
    hidden = [Prompt.objects.create(text=f"s{i}", source="test", import_batch=staged) for i in range(60)]
    expected = [p.pk for p in prompts if training_bridge.is_validation(f"prompt-{p.pk}", HELD_OUT_FRACTION)]
    assert 0 < len(expected) < len(prompts)
    assert [p.pk for p in prompts_held_out(limit=100)] == expected
    assert [p.pk for p in prompts_held_out(limit=2)] == expected[:2]
    assert not {p.pk for p in prompts_held_out(limit=1000)} & {p.pk for p in hidden}


def test_policy_dpo_needs_held_out_prompts(synthetic_preferences, run_now, monkeypatch):
    """With every prompt on the training side there is nothing to judge the new policy on: the run says so."""
    synthetic_preferences(4)
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active")
    monkeypatch.setattr(training_bridge, "policy_materialise_base", lambda *, name: (f"policy/{name}", {}))
    monkeypatch.setattr(training_bridge, "generator_source", lambda: ("models/gen", None))
    monkeypatch.setattr(training_bridge, "is_validation", lambda key, fraction: False)
    monkeypatch.setattr(training_bridge, "dpo_train", lambda **kwargs: pytest.fail("trained without held-out prompts"))
    run = run_now("policy_dpo")
    assert run.status == "failed" and "no held-out prompts" in run.error


@pytest.fixture
def fake_bridge(monkeypatch):
    """Replace the bridge's model work by fakes that record what the service passed them; return the records."""
    from types import SimpleNamespace

    from rm_trainer.data import PreferencePair

    calls = {}

    def online_pairs(**kwargs):
        calls["online"] = kwargs
        return [PreferencePair(f"online-{k}", text, "best", "worst", margin=1.0) for k, (text, _) in enumerate(kwargs["prompts"])]

    def dpo_train(**kwargs):
        calls["train"] = kwargs
        metrics = {"loss": 0.6, "reward_accuracy": 0.7, "beta": 0.1, "steps": 2, "seconds_per_step": 1.5, "reference_seconds": 0.5}
        return SimpleNamespace(n_pairs=len(kwargs["pairs"]), steps=2, seconds=3.0, metrics=metrics, manifest={"format": "lora"})

    def policy_win_rate(**kwargs):
        calls["judge"] = kwargs
        return SimpleNamespace(win_rate=0.75, wins=3, ties=0, losses=1, n=4, mean_reward_gap=0.2, mean_reply_tokens=41.25,
                               kl_to_base=1.234567, kl_to_base_per_token=0.0299289)

    monkeypatch.setattr(training_bridge, "policy_materialise_base", lambda *, name: (f"policy/{name}", {}))
    monkeypatch.setattr(training_bridge, "generator_source", lambda: ("models/gen", None))
    monkeypatch.setattr(training_bridge, "online_pairs", online_pairs)
    monkeypatch.setattr(training_bridge, "dpo_train", dpo_train)
    monkeypatch.setattr(training_bridge, "policy_win_rate", policy_win_rate)
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active")
    return calls


def test_human_and_on_policy_pairs_reach_dpo_and_the_run_records_their_counts(synthetic_preferences, run_now, fake_bridge, settings):
    """The human pairs (held-out prompts left out) and the on-policy pairs train together; the run records beta, steps and s/step."""
    settings.DPO_ONLINE_PROMPTS = 5
    synthetic_preferences(40)
    run = run_now("policy_dpo")
    assert run.status == "succeeded", run.error
    online = fake_bridge["online"]
    assert online["reward_name"] == "rm-1" and online["policy_name"] == "policy-base" and len(online["prompts"]) == 5
    pairs = fake_bridge["train"]["pairs"]
    human = [p for p in pairs if not p.pair_id.startswith("online-")]
    held_out = {p.text for p in prompts_held_out(limit=settings.DPO_EVAL_PROMPTS)}
    assert len(pairs) == len(human) + 5 and human and not {p.prompt for p in human} & held_out
    metrics = run.metrics
    assert (metrics["n_human_pairs"], metrics["n_online_pairs"], metrics["n_pairs"]) == (len(human), 5, len(pairs))
    assert (metrics["beta"], metrics["steps"], metrics["seconds_per_step"]) == (0.1, 2, 1.5)
    assert run.policy_version.status == "active" and run.policy_version.parent.name == "policy-base"


def test_the_new_version_records_its_kl_to_the_base_policy(synthetic_preferences, run_now, fake_bridge, settings):
    """The judge gets the base policy beside the active one; the version records its reply length and KL to the base."""
    synthetic_preferences(20)
    first = run_now("policy_dpo").policy_version
    assert (fake_bridge["judge"]["base_name"], fake_bridge["judge"]["base_path"]) == ("policy-base", "policy/policy-base")
    assert (first.metrics["mean_reply_tokens"], first.metrics["kl_to_base"], first.metrics["kl_to_base_per_token"]) == (41.2, 1.2346, 0.0299)
    second = run_now("policy_dpo").policy_version  # trained from, and judged against, the first: the KL is still to the base
    assert second.parent == first and fake_bridge["judge"]["old_name"] == first.name
    assert fake_bridge["judge"]["base_name"] == "policy-base"


def test_on_policy_pairs_never_use_held_out_prompts(synthetic_preferences, run_now, fake_bridge, settings):
    """Online prompts come from the training side of the whole validation split, however large DPO_ONLINE_PROMPTS is."""
    settings.DPO_ONLINE_PROMPTS = 1000
    settings.DPO_EVAL_PROMPTS = 1
    synthetic_preferences(60)
    assert run_now("policy_dpo").status == "succeeded"
    used = {text for text, _ in fake_bridge["online"]["prompts"]}
    validation = {p.text for p in Prompt.objects.all() if training_bridge.is_validation(f"prompt-{p.pk}", HELD_OUT_FRACTION)}
    assert validation and used and not used & validation
    assert len(used) == Prompt.objects.count() - len(validation)


def test_no_online_prompts_trains_on_the_human_pairs_alone(synthetic_preferences, run_now, fake_bridge, settings):
    """DPO_ONLINE_PROMPTS 0 samples nothing: the run learns from the human pairs only."""
    settings.DPO_ONLINE_PROMPTS = 0
    synthetic_preferences(20)
    run = run_now("policy_dpo")
    assert "online" not in fake_bridge and run.metrics["n_online_pairs"] == 0
    assert run.metrics["n_human_pairs"] == len(fake_bridge["train"]["pairs"]) > 0


def test_dpo_from_base_trains_from_the_base_and_is_judged_against_the_active_policy(synthetic_preferences, run_now, fake_bridge, settings):
    """With DPO_FROM_BASE the base policy is the parent, samples the on-policy pairs and is the reference; the gate still compares with the active policy."""
    from feedback_app.models import PolicyVersion

    synthetic_preferences(20)
    first = run_now("policy_dpo").policy_version
    assert first.status == "active" and fake_bridge["train"]["base_name"] == "policy-base"

    settings.DPO_FROM_BASE = False
    second = run_now("policy_dpo").policy_version
    assert second.parent == first and fake_bridge["online"]["policy_name"] == first.name

    settings.DPO_FROM_BASE = True
    run = run_now("policy_dpo")
    assert run.policy_version.parent == PolicyVersion.objects.get(name="policy-base")
    assert fake_bridge["train"]["base_name"] == fake_bridge["online"]["policy_name"] == "policy-base"
    assert fake_bridge["judge"]["old_name"] == second.name == run.metrics["compared_with"]
    assert run.metrics["trained_from"] == "policy-base"


def test_a_trained_version_and_the_base_policy_are_served_in_policy_serving_mode(synthetic_preferences, run_now, fake_bridge, settings):
    """The two tiers: a new DPO version takes POLICY_SERVING_MODE, and so does the base generator when it is first written."""
    from feedback_app.models import PolicyVersion

    synthetic_preferences(20)
    settings.POLICY_SERVING_MODE = "rerank"
    assert run_now("policy_dpo").policy_version.serving_mode == "rerank"
    assert PolicyVersion.objects.get(name="policy-base").serving_mode == "rerank"
    settings.POLICY_SERVING_MODE = "sample"
    assert run_now("policy_dpo").policy_version.serving_mode == "sample"
    assert PolicyVersion.objects.get(name="policy-base").serving_mode == "rerank"  # written once; its mode is changed by an admin action


def test_a_rater_s_rewrite_trains_dpo_as_better_than_both_replies(synthetic_preferences, run_now, fake_bridge, make_comparisons, rater, monkeypatch):
    """The pairs a rewrite implies (rewrite over A, over B) reach DPO with the human pairs."""
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next

    synthetic_preferences(20)
    (comparison,) = make_comparisons(1)
    split = training_bridge.is_validation
    monkeypatch.setattr(training_bridge, "is_validation", lambda key, fraction: key != f"prompt-{comparison.prompt_id}" and split(key, fraction))
    assert assignment_lease_next(campaign=campaign_default(), rater=rater).comparison_id == comparison.pk
    label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="both_bad", edited_text="It ships on Monday."))
    assert run_now("policy_dpo").status == "succeeded"
    rejected = {p.rejected for p in fake_bridge["train"]["pairs"] if p.chosen == "It ships on Monday."}
    assert rejected == {comparison.response_a.text, comparison.response_b.text}


def test_a_dpo_run_records_the_trusted_judges_labels_it_learned_from(synthetic_preferences, run_now, fake_bridge, make_judge, make_audits,
                                                                     make_comparisons, settings, monkeypatch):
    """A trusted reward-model judge's labels may train the policy, and the run says how many it used, by label source."""
    from feedback_app.models import PreferenceLabel

    settings.AI_MIN_AUDITS = 1
    synthetic_preferences(20)
    judge = make_judge("rm", kind="reward_model", routing=False)
    make_audits(judge, n=1, agree=1)
    (comparison,) = make_comparisons(1)
    split = training_bridge.is_validation
    monkeypatch.setattr(training_bridge, "is_validation", lambda key, fraction: key != f"prompt-{comparison.prompt_id}" and split(key, fraction))
    PreferenceLabel.objects.create(comparison=comparison, judge_version=judge.versions.get(), winner="a")
    run = run_now("policy_dpo")
    assert run.status == "succeeded", run.error
    assert run.metrics["ai_labels"] == {"ai:rm": 1}
