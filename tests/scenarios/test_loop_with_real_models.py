"""Training runs with the real default models: all-MiniLM-L6-v2 and SmolLM2-135M-Instruct."""

import stat

import pytest

from feedback_app import training_bridge
from feedback_app.models import PolicyVersion
from feedback_app.services.policy_update import prompts_held_out
from feedback_app.services.scoring import responses_score
from feedback_app.services.training import training_run_execute
from feedback_app.services.training_runs import training_run_request
from feedback_app.services.versions import version_activate

pytestmark = [pytest.mark.models, pytest.mark.django_db]


def run_now(kind):
    run = training_run_request(kind=kind, trigger="cli")
    training_run_execute(run_id=run.pk, worker="test")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


def test_fast_refit_learns_and_the_scorer_swaps_without_restart(synthetic_preferences, settings):
    # 120 pairs: the fixed 10% validation split keys on comparison ids, which PostgreSQL's sequences
    # carry over from earlier tests; 60 pairs left it empty about once in 550 runs (0.9 ** 60).
    synthetic_preferences(120)
    settings.REWARD_HEADS_REPLAY = 50  # the second fit starts from the first's heads: 10 new pairs and 50 of the 120 learned
    first = run_now("reward_fast").reward_model_version
    assert first.status == "active" and first.tier == "fast"
    assert first.metrics["val_accuracy"] >= 0.99 and first.metrics["n_validation"] > 0
    assert first.metrics["calibration"] and first.manifest["backbone"]
    folder = training_bridge.version_folder(first.path)
    assert (folder / "manifest.json").exists()
    assert all(not p.stat().st_mode & stat.S_IWUSR for p in folder.rglob("*") if p.is_file())

    scored = responses_score(prompt="Customer: my blender arrived broken.", context=[],
                             responses=["Not my problem. Sort out the blender yourself.",
                                        "Thank you for reaching out about your blender! I'm sorry for the trouble. Here is exactly what to do next."])
    assert scored["reward_model_version"] == first.name and scored["rewards"][1] > scored["rewards"][0]

    synthetic_preferences(130)  # 10 new pairs: the next fit embeds only their texts, into a new shard
    second = run_now("reward_fast").reward_model_version
    assert second.parent == first and second.metrics["baseline"]["val_accuracy"] is not None
    assert second.manifest["replay"] == {"warm_from": first.name, "new_pairs": 10, "replayed": 50, "learned_before": 120, "gone": 0,
                                         "pairs_given": 130}
    assert second.metrics["heads_warm_from"] == first.name and second.metrics["val_accuracy"] >= 0.99
    assert second.metrics["n_train"] + second.metrics["n_validation"] == 60 and second.data_range["n_pairs"] == 130
    shards = lambda: list((settings.MODEL_STORE / "embeddings").rglob("*.npz"))  # noqa: E731
    assert len(shards()) == 2
    assert training_bridge.embeddings_compact(manifest=second.manifest, min_shards=2) == 2 and len(shards()) == 1
    assert responses_score(prompt="p", context=[], responses=["a"])["reward_model_version"] == second.name
    version_activate(version=first, user=None, action="rollback")
    assert responses_score(prompt="p", context=[], responses=["a"])["reward_model_version"] == first.name


def test_supply_generates_english_candidates_and_records_provenance(db, settings, synthetic_preferences):
    from feedback_app.models import Comparison, Prompt
    from feedback_app.services.supply import comparisons_supply

    settings.SUPPLY_OPEN_TARGET = 2
    settings.SUPPLY_BATCH_PROMPTS = 2
    settings.SUPPLY_CANDIDATES = 3
    settings.GENERATION_MAX_NEW_TOKENS = 24
    synthetic_preferences(12)
    run_now("reward_fast")
    Prompt.objects.create(text="My parcel never arrived. What can you do?", source="test")
    Prompt.objects.create(text="How do I reset my online banking password?", source="test")
    made = comparisons_supply()
    assert made == 2
    policy = PolicyVersion.objects.get(status="active")
    assert policy.name == "policy-base"
    for comparison in Comparison.objects.filter(policy_version=policy):
        assert comparison.reward_model_version.status == "active"
        assert comparison.selection_strategy == "uncertain" and comparison.selection_score is not None
        for response in (comparison.response_a, comparison.response_b):
            assert response.policy_version == policy and response.text.strip()
            assert sum(c.isascii() for c in response.text) / len(response.text) > 0.9
    assert comparisons_supply() == 0  # the target is met


def test_policy_dpo_run_produces_a_judged_policy_version(db, settings, synthetic_preferences):
    settings.DPO_MAX_PAIRS = 8
    settings.DPO_EVAL_PROMPTS = 2
    settings.DPO_ONLINE_PROMPTS = 3
    settings.DPO_ONLINE_MIN_GAP = 0.0
    settings.GENERATION_MAX_NEW_TOKENS = 16
    synthetic_preferences(40)
    reward = run_now("reward_fast").reward_model_version
    run = run_now("policy_dpo")
    version = run.policy_version
    base = PolicyVersion.objects.get(name="policy-base")
    assert version.parent == base and version.reward_model == reward and version.path == f"policy/{version.name}"
    metrics = run.metrics
    assert metrics["n_human_pairs"] == 8 and metrics["n_eval_prompts"] == 2 and metrics["judge"] == reward.name
    assert 0 < metrics["n_online_pairs"] <= 3 and metrics["n_pairs"] == 8 + metrics["n_online_pairs"]
    assert metrics["steps"] == metrics["n_pairs"] // 4 + (metrics["n_pairs"] % 4 > 0) and metrics["beta"] == settings.DPO_BETA
    assert 0.0 <= metrics["win_rate_vs_parent"] <= 1.0 and metrics["wins"] + metrics["ties"] + metrics["losses"] == 2
    # a short run from the base: its KL to it, from 2 samples, is small (a single-sample estimate may dip below 0)
    assert abs(metrics["kl_to_base"]) < 20 and metrics["kl_to_base_per_token"] == pytest.approx(
        metrics["kl_to_base"] / metrics["mean_reply_tokens"], rel=1e-2, abs=1e-3)
    expected = "active" if metrics["win_rate_vs_parent"] > settings.POLICY_PROMOTION_WIN_RATE else "candidate"
    assert version.status == expected and metrics["promoted"] == (expected == "active")
    assert version.manifest["format"] == "lora" and version.manifest["parent"] == "policy-base"
    held_out = {p.pk for p in prompts_held_out(limit=2)}
    assert held_out and run.metrics["data_range"]["n_labels"] == 40 - len(held_out)

