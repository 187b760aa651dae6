"""Each campaign has its own reward-model and policy lines: its labels train them, its prompts are answered by them,
one version of each is active per campaign, and nothing crosses from one campaign's line to another's.

The fits and the generator are stand-ins here (the real ones run in tests/scenarios); the services,
constraints, pages and API calls are the real ones.
"""

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from feedback_app import training_bridge
from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PolicyVersion, Prompt, Response, RewardModelVersion, Role, TrainingRun
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.selectors.training import policy_active, reward_labels_unlearned, reward_model_active
from feedback_app.services.training_data import labels_for_training
from feedback_app.services.auto_refit import training_auto_refit_if_due
from feedback_app.services.campaigns import campaign_create, campaign_settings_update, member_set
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.services.policy_cadence import policy_labels_since_last_run
from feedback_app.services.training import training_run_execute
from feedback_app.services.training_runs import training_run_get_or_request, training_run_request
from feedback_app.services.versions import policy_active_or_base, version_activate
from tests.conftest import api_client_for
from tests.feedback_app.services.conftest import FakeFit
from tests.caches import caches_clear

pytestmark = pytest.mark.django_db


def _label(campaign, rater, n: int, *, word: str) -> None:
    """Make ``n`` comparisons in ``campaign`` and have ``rater`` label each."""
    for i in range(n):
        prompt = Prompt.objects.create(campaign=campaign, text=f"{word} request {i}")
        a = Response.objects.create(prompt=prompt, text=f"{word} reply A{i}")
        b = Response.objects.create(prompt=prompt, text=f"{word} reply B{i}")
        Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=1)
    for i in range(n):
        held = assignment_lease_next(rater=rater, campaign=campaign)
        label_record(rater=rater, campaign=campaign, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left" if i % 2 else "right"))


@pytest.fixture
def studio(make_user, monkeypatch):
    """The default campaign with 6 labels and "billing" with 4, each labelled by its own rater; the fits are stand-ins."""
    admin = make_user(Role.ADMIN)
    default = campaign_default()
    campaign_settings_update(campaign=default, user=admin, gold_rate=0.0)
    billing = campaign_create(slug="billing", name="Billing replies", actor=admin)
    caches_clear()  # the rules' on-commit cache clear, which a test transaction never runs
    raters = {"default": make_user(Role.RATER), "billing": make_user(Role.RATER)}
    member_set(campaign=billing, user=raters["billing"], role=Role.RATER, actor=admin)
    researcher = make_user(Role.RATER)
    member_set(campaign=billing, user=researcher, role=Role.RESEARCHER, actor=admin)
    _label(default, raters["default"], 6, word="Default")
    _label(billing, raters["billing"], 4, word="Billing")
    fit = FakeFit()
    monkeypatch.setattr(training_bridge, "reward_fit", fit)
    monkeypatch.setattr(training_bridge, "checkpoint_remove", lambda path: removed.append(path))
    removed = []
    return {"default": default, "billing": billing, "admin": admin, "raters": raters, "billing_researcher": researcher, "fit": fit,
            "removed": removed}


def _refit(campaign) -> TrainingRun:
    run = training_run_request(kind="reward_fast", trigger=TrainingRun.Trigger.CLI, campaign_id=campaign.pk)
    training_run_execute(run_id=run.pk, worker="w1")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    return run


def test_each_campaign_s_refit_learns_from_its_own_labels_and_promotes_in_its_own_line(studio):
    default, billing, fit = studio["default"], studio["billing"], studio["fit"]
    labels, data_range = labels_for_training(campaign_id=billing.pk)
    assert {label.comparison.prompt.text.split()[0] for label in labels} == {"Billing"} and data_range["n_labels"] == 4
    billing_run = _refit(billing)
    assert fit.calls[-1]["n"] == 4  # billing's four pairs, none of the default campaign's six
    billing_rm = billing_run.reward_model_version
    assert (billing_rm.campaign_id, billing_rm.status, billing_run.campaign_id) == (billing.pk, "active", billing.pk)
    assert reward_model_active() is None  # the default campaign's line has no model yet
    default_run = _refit(default)
    assert fit.calls[-1]["n"] == 6 and fit.calls[-1]["parent"] is None  # not warm-started from, nor gated against, billing's model
    assert reward_model_active().pk == default_run.reward_model_version_id
    assert reward_model_active(campaign_id=billing.pk).pk == billing_rm.pk  # both active at once, one per campaign
    again = _refit(billing)
    assert fit.calls[-1]["parent"] == billing_rm.name and again.reward_model_version.parent_id == billing_rm.pk
    billing_rm.refresh_from_db()
    assert billing_rm.status == "retired" and reward_model_active().pk == default_run.reward_model_version_id
    with pytest.raises(IntegrityError), transaction.atomic():
        RewardModelVersion.objects.filter(pk=billing_rm.pk).update(status="active")  # a second active model in billing's line


def test_queued_runs_and_automatic_triggers_are_per_campaign(studio, settings, monkeypatch):
    from feedback_app import tasks

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: None)
    default, billing = studio["default"], studio["billing"]
    ours, created = training_run_get_or_request(kind="reward_fast", trigger=TrainingRun.Trigger.MANUAL, campaign_id=billing.pk)
    theirs, created_too = training_run_get_or_request(kind="reward_fast", trigger=TrainingRun.Trigger.MANUAL, campaign_id=default.pk)
    assert created and created_too and ours.pk != theirs.pk  # one queued run of a kind per campaign, not per studio
    assert training_run_get_or_request(kind="reward_fast", trigger=TrainingRun.Trigger.MANUAL, campaign_id=billing.pk) == (ours, False)
    TrainingRun.objects.all().delete()
    settings.REFIT_EVERY_N_LABELS = 5
    assert reward_labels_unlearned(campaign_id=billing.pk) == 4 and reward_labels_unlearned() == 6
    assert training_auto_refit_if_due(campaign_id=billing.pk) is None  # billing's 4 labels are not 5; the default's 6 do not count
    run = training_auto_refit_if_due()
    assert run.campaign_id == DEFAULT_CAMPAIGN_ID
    campaign_settings_update(campaign=billing, user=studio["admin"], refit_every_n_labels=4)
    caches_clear()
    assert training_auto_refit_if_due(campaign_id=billing.pk).campaign_id == billing.pk  # its own cadence
    assert policy_labels_since_last_run(campaign_id=billing.pk) == 4 and policy_labels_since_last_run() == 6


def test_the_supply_answers_each_campaign_s_prompts_with_its_own_policy_and_rules(studio, settings, monkeypatch):
    from feedback_app.services.supply import comparisons_supply

    default, billing = studio["default"], studio["billing"]
    for campaign in (default, billing):
        campaign_settings_update(campaign=campaign, user=studio["admin"], arena_share=0.0)
    campaign_settings_update(campaign=billing, user=studio["admin"], labels_per_comparison=3)
    caches_clear()
    Prompt.objects.create(campaign=default, text="Default new question")
    Prompt.objects.create(campaign=billing, text="Billing new question")
    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="candidate", generator="smol")
    seen = []

    def generate(*, policy_name, policy_path, prompts, n, seed, models, should_stop=None):
        seen.append((policy_name, policy_path, sorted(text for text, _ in prompts)))
        return training_bridge.Candidates(texts=[[f"{policy_name} reply {k}" for k in range(n)] for _ in prompts],
                                          truncated=[[False] * n for _ in prompts])

    monkeypatch.setattr(training_bridge, "candidates_generate", generate)
    settings.SUPPLY_OPEN_TARGET, settings.SUPPLY_BATCH_PROMPTS = 1, 8  # one each: the new prompt, served least
    assert comparisons_supply() == 2
    billing_base = policy_active(campaign_id=billing.pk)
    assert billing_base.name == f"policy-base-{billing.pk}" and billing_base.path == "policy/policy-base"  # its own version, the same weights
    assert sorted(seen) == sorted([(billing_base.name, "policy/policy-base", ["Billing new question"]),
                                   ("policy-base", "policy/policy-base", ["Default new question"])])
    made = Comparison.objects.filter(prompt__text__endswith="new question")
    assert {(c.prompt.campaign_id, c.policy_version.name, c.required_labels) for c in made} == {
        (DEFAULT_CAMPAIGN_ID, "policy-base", 1), (billing.pk, billing_base.name, 3)}


def test_a_campaign_started_from_another_inherits_its_active_models_and_records_the_parent(studio):
    default, billing = studio["default"], studio["billing"]
    rm = _refit(default).reward_model_version
    trained = PolicyVersion.objects.create(name="policy-00009", path="policy/policy-00009", reward_model=rm, serving_mode="rerank")
    version_activate(version=trained, user=None, action="promote")
    safety = campaign_create(slug="safety", name="Safety", parent=default, actor=studio["admin"])
    rm_copy, policy_copy = reward_model_active(campaign_id=safety.pk), policy_active(campaign_id=safety.pk)
    assert (rm_copy.parent_id, rm_copy.path, rm_copy.name) == (rm.pk, rm.path, f"{rm.name}-c{safety.pk}")
    assert (policy_copy.parent_id, policy_copy.path, policy_copy.serving_mode) == (trained.pk, trained.path, "rerank")
    assert reward_model_active().pk == rm.pk and policy_active().pk == trained.pk  # the parent's line is untouched
    assert not TrainingRun.objects.filter(campaign=safety).exists()  # no policy update asked for a campaign with no labels
    assert reward_model_active(campaign_id=billing.pk) is None and policy_active(campaign_id=billing.pk) is None  # from the base
    # the arena gate never rolls a campaign back into another's line
    from feedback_app.services.arena_gate import policy_arena_check

    assert policy_arena_check(campaign_id=safety.pk) is None and policy_active(campaign_id=safety.pk).pk == policy_copy.pk


def test_retention_keeps_a_folder_another_campaign_s_version_still_uses(studio, settings):
    from feedback_app.services.retention import model_store_prune

    default = studio["default"]
    first = _refit(default).reward_model_version
    campaign_create(slug="safety", name="Safety", parent=default, actor=studio["admin"])
    _refit(default)
    _refit(default)
    settings.MODEL_RETENTION_KEEP = 1
    first.refresh_from_db()
    assert first.status == "retired"
    model_store_prune()
    first.refresh_from_db()
    assert first.status == "retired" and first.path not in studio["removed"]  # safety's active copy uses its folder


def test_a_campaign_s_runs_versions_and_dashboard_are_its_own(studio):
    default, billing = studio["default"], studio["billing"]
    default_rm = _refit(default).reward_model_version
    billing_run = _refit(billing)
    researcher = studio["billing_researcher"]
    api = api_client_for(researcher)
    listed = api.get("/api/v1/campaigns/billing/training-runs/").json()
    assert [r["id"] for r in listed] == [billing_run.pk]
    default_run_id = TrainingRun.objects.get(campaign=default).pk
    assert api.get(f"/api/v1/campaigns/billing/training-runs/{default_run_id}/").status_code == 404
    assert api.post(f"/api/v1/campaigns/billing/reward-models/{default_rm.name}/activate/").status_code == 404
    assert api.get("/api/v1/training-runs/").status_code == 403  # the default campaign's runs are not theirs
    queued = api.post("/api/v1/campaigns/billing/training-runs/", {"kind": "reward_full"}, format="json")
    assert queued.status_code == 201 and TrainingRun.objects.get(pk=queued.json()["id"]).campaign_id == billing.pk
    admin_runs = api_client_for(studio["admin"]).get("/api/v1/training-runs/").json()
    assert billing_run.pk not in {r["id"] for r in admin_runs}  # unscoped: the default campaign's line
    client = Client()
    client.force_login(researcher)
    page = client.get("/c/billing/dashboard/models/").content.decode()
    assert billing_run.reward_model_version.name in page and default_rm.name not in page
    assert 'action="/c/billing/dashboard/runs/"' in page
    assert client.post("/c/billing/dashboard/runs/", {"kind": "policy_dpo"}).status_code == 302
    assert TrainingRun.objects.filter(campaign=billing, kind="policy_dpo").exists()
    assert client.get(f"/c/billing/dashboard/reward-models/{default_rm.name}/activate/").status_code == 404
    overview = client.get("/c/billing/dashboard/").content.decode()
    assert "Model versions" in overview and billing_run.reward_model_version.name in overview


def test_a_swap_is_announced_to_its_own_campaign_s_raters_and_dashboards(studio, monkeypatch, django_capture_on_commit_callbacks):
    from feedback_app import events

    sent = []
    monkeypatch.setattr(events, "broadcast", lambda group, kind, html: sent.append((group, kind)))
    monkeypatch.setattr(events, "_enqueue", lambda *args, **kwargs: None)
    billing = studio["billing"]
    policy = PolicyVersion.objects.create(name="policy-00011", campaign=billing, path="policy/policy-00011")
    with django_capture_on_commit_callbacks(execute=True):
        version_activate(version=policy, user=None, action="promote")
    assert (f"raters.{billing.pk}", "policy.swapped") in sent and ("raters", "policy.swapped") not in sent
    assert (f"dashboard.{billing.pk}", "dashboard.update") in sent and policy_active_or_base(campaign_id=billing.pk).pk == policy.pk


def test_ai_feedback_is_switched_trusted_and_weighed_per_campaign(studio, make_judge, make_audits, settings):
    """A judge's audits in the default campaign earn it no trust in billing; billing may turn AI feedback off altogether."""
    from feedback_app.models import Verdict
    from feedback_app.selectors.judges import ai_label_weights, judge_routing, judge_trust
    from feedback_app.services.ai_routing import comparisons_judge_and_route

    settings.AI_MIN_AUDITS = 10
    default, billing = studio["default"], studio["billing"]
    judge = make_judge(threshold=0.8)
    make_audits(judge, n=12, agree=12)  # in the default campaign (make_comparisons' prompts are its)
    assert judge_trust(judge=judge).trusted
    billing_trust = judge_trust(judge=judge, campaign_id=billing.pk)
    assert not billing_trust.trusted and billing_trust.n_audits == 0
    version = judge.versions.get()

    def waiting(campaign, word):
        prompt = Prompt.objects.create(campaign=campaign, text=f"{word} waits")
        comparison = Comparison.objects.create(prompt=prompt, response_a=Response.objects.create(prompt=prompt, text="Yes."),
                                               response_b=Response.objects.create(prompt=prompt, text="No."), status=Comparison.Status.JUDGING)
        Verdict.objects.create(judge_version=version, comparison=comparison, cache_key=f"w{comparison.pk}", choice="a", confidence=0.95)
        return comparison

    ours, theirs = waiting(default, "Default"), waiting(billing, "Billing")
    routes = comparisons_judge_and_route(comparison_ids=[ours.pk, theirs.pk])
    ours.refresh_from_db(), theirs.refresh_from_db()
    assert ours.route in ("ai", "audit") and theirs.route == "people"  # billing has not seen the judge earn its trust
    assert sum(routes.values()) == 2
    assert ai_label_weights(purpose="reward")[version.pk] > 0  # its label on ours trains the default campaign's models
    assert ai_label_weights(purpose="reward", campaign_id=billing.pk) == {}  # no AI label in billing, and no trust there
    campaign_settings_update(campaign=billing, user=studio["admin"], ai_feedback=False)
    caches_clear()
    assert judge_routing(campaign_id=billing.pk) is None and judge_routing() == judge
    late = waiting(billing, "Billing again")
    comparisons_judge_and_route(comparison_ids=[late.pk])
    late.refresh_from_db()
    assert (late.route, late.status) == ("", "open")  # no judge routes there: offered to people as without AI feedback
