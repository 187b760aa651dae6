import pytest
from django.test import Client

from feedback_app.models import AuditEntry, Comparison, PolicyVersion, PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.models import DEFAULT_CAMPAIGN_ID
from feedback_app.models import Campaign

pytestmark = pytest.mark.django_db
PAGES = ["/dashboard/", "/dashboard/models/", "/dashboard/quality/", "/dashboard/review/", "/dashboard/arena/"]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def studio(make_user, make_comparisons):
    """Versions, runs (with and without a version), overlapping labels, a flag and an arena vote."""
    rm1 = RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001", status="retired",
                                            metrics={"val_accuracy": 0.6, "val_loss": 0.66, "calibration": [{"p_mean": 0.6, "accuracy": 0.6, "count": 9}]})
    rm2 = RewardModelVersion.objects.create(name="rm-00002", path="reward/rm-00002", status="active", parent=rm1,
                                            metrics={"val_accuracy": 0.7, "val_loss": 0.6, "val_ece": 0.05, "baseline": {"val_accuracy": 0.6},
                                                     "heads_warm_from": "rm-00001", "n_train": 6,
                                                     "calibration": [{"p_mean": 0.7, "accuracy": 0.72, "count": 20}]},
                                            data_range={"first_label_id": 1, "last_label_id": 9, "n_pairs": 9})
    base = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="retired")
    new = PolicyVersion.objects.create(name="policy-00003", path="policy/policy-00003", status="active", parent=base,
                                       metrics={"win_rate_vs_parent": 0.62, "mean_reply_tokens": 41.2, "kl_to_base": 1.2346,
                                                "kl_to_base_per_token": 0.0299, "ai_labels": {"ai:rm": 17}})
    TrainingRun.objects.create(kind="reward_fast", status="succeeded", reward_model_version=rm2, metrics={"val_accuracy": 0.7})
    TrainingRun.objects.create(kind="policy_dpo", status="running", progress={"phase": "dpo", "step": 2, "total_steps": 8, "loss": 0.69})
    TrainingRun.objects.create(kind="reward_full", status="failed", error="CUDA out of memory")
    c1, c2 = make_comparisons(2, required_labels=2)
    prompt = c1.prompt
    a = prompt.responses.create(text="new policy reply", policy_version=new)
    b = prompt.responses.create(text="old policy reply", policy_version=base)
    arena = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, kind="arena", required_labels=2, rm_prob_a_wins=0.8)
    raters = [make_user(), make_user()]
    for i, r in enumerate(raters):
        for _ in range(3):
            assignment = assignment_lease_next(campaign=campaign_default(), rater=r)
            label_record(campaign=campaign_default(), rater=r, comparison_id=assignment.comparison_id,
                         submission=LabelSubmission(choice="left" if i == 0 else "right", flags=("unsafe",) if i == 0 else ()))
    return {"rm": (rm1, rm2), "policies": (base, new), "arena": arena, "raters": raters}


def test_pages_render_for_staff_and_refuse_raters(studio, researcher, rater):
    client = logged_in(researcher)
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200, page
    overview = client.get("/dashboard/").content.decode()
    assert 'ws-connect="/ws/dashboard/"' in overview and 'id="chart-data"' in overview and "rm-00002" in overview
    assert "step 2 / 8" in overview  # the running DPO run
    models = client.get("/dashboard/models/").content.decode()
    assert "CUDA out of memory" in models and "Roll back" in models and "policy-00003" in models
    assert "41.2" in models and "1.235 (0.0299/token)" in models  # the version's reply length and KL to the base
    assert 'data-testid="ai-labels-policy-00003"' in models and "ai:rm 17" in models  # the judges whose labels trained it
    assert 'data-testid="warm-rm-00002"' in models and "heads from rm-00001, trained on 6 of 9 pairs" in models
    assert 'data-testid="warm-rm-00001"' not in models  # a cold fit says nothing
    for page in PAGES:
        assert logged_in(rater).get(page).status_code == 403
        assert Client().get(page).status_code == 302


def test_arena_page_rates_policies_from_votes(studio, researcher):
    html = logged_in(researcher).get("/dashboard/arena/").content.decode()
    assert "2 human votes" in html and "policy-00003" in html and "policy-base" in html


def test_a_policy_the_arena_gate_rolled_back_says_why_on_the_arena_and_models_pages(studio, researcher):
    reason = "human arena votes against its parent policy-base: 6 wins, 24 losses"
    PolicyVersion.objects.filter(name="policy-00003").update(metrics={"rolled_back": {
        "to": "policy-base", "at": "2025-01-02T03:04:05+00:00", "reason": reason, "wins": 6, "losses": 24, "interval": [0.1, 0.37]}})
    client = logged_in(researcher)
    for page in ("/dashboard/arena/", "/dashboard/models/"):
        html = client.get(page).content.decode()
        assert 'data-testid="rolled-back-policy-00003"' in html and reason in html and "by the arena gate" in html


def test_both_pages_show_each_policys_serving_mode_and_its_record_vs_parent_per_mode(studio, researcher):
    """The arena comparison of the studio was served reranked; its votes show under the total as rerank: wins–ties–losses."""
    PolicyVersion.objects.filter(name="policy-00003").update(serving_mode="rerank")
    Comparison.objects.filter(pk=studio["arena"].pk).update(policy_mode="rerank")
    client = logged_in(researcher)
    for page in ("/dashboard/arena/", "/dashboard/models/"):
        html = client.get(page).content.decode()
        assert ">rerank</td>" in html and ">sample</td>" in html, page
        assert 'data-testid="by-mode-policy-00003-rerank"' in html and 'data-testid="by-mode-policy-00003-sample"' not in html, page


def test_promote_and_roll_back_need_confirmation_and_are_audited(studio, researcher, monkeypatch):
    from feedback_app import tasks

    monkeypatch.setattr(tasks.comparisons_rm_score, "delay", lambda: None)
    client = logged_in(researcher)
    confirm = client.get("/dashboard/reward-models/rm-00001/activate/")
    assert confirm.status_code == 200 and "Roll back to rm-00001?" in confirm.content.decode()
    assert RewardModelVersion.objects.get(name="rm-00001").status == "retired"  # a GET changes nothing
    assert client.post("/dashboard/reward-models/rm-00001/activate/").status_code == 302
    assert RewardModelVersion.objects.get(name="rm-00001").status == "active"
    assert AuditEntry.objects.get(action="rewardmodelversion.rollback").actor == researcher
    assert client.post("/dashboard/widgets/x/activate/").status_code == 404
    assert client.post("/dashboard/policies/nope/activate/").status_code == 404


def test_retrain_button_queues_a_run(researcher, monkeypatch, django_capture_on_commit_callbacks):
    from feedback_app import tasks

    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: sent.append(args[0]))
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(researcher).post("/dashboard/runs/", {"kind": "reward_full"})
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert (run.kind, run.trigger, run.requested_by) == ("reward_full", "manual", researcher) and sent == [run.pk]
    assert AuditEntry.objects.filter(action="training.request").exists()


def test_retrain_button_twice_names_the_run_already_queued(researcher, monkeypatch):
    from feedback_app import tasks

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: None)
    client = logged_in(researcher)
    client.post("/dashboard/runs/", {"kind": "reward_fast"})
    response = client.post("/dashboard/runs/", {"kind": "reward_fast"}, follow=True)
    run = TrainingRun.objects.get()
    assert f"Already queued: training run {run.pk}" in response.content.decode()


def test_settings_form(researcher):
    client = logged_in(researcher)
    response = client.post("/dashboard/quality/", {"gold_rate": "0.2", "arena_share": "0.5", "weight_by_trust": "on", "min_trust": "0.3"})
    assert response.status_code == 302
    config = Campaign.objects.get(pk=DEFAULT_CAMPAIGN_ID)
    assert (config.gold_rate, config.arena_share, config.weight_by_trust, config.min_trust) == (0.2, 0.5, True, 0.3)
    bad = client.post("/dashboard/quality/", {"gold_rate": "3", "arena_share": "0.5", "min_trust": "0"})
    assert bad.status_code == 400 and "Ensure this value is less than or equal to 1" in bad.content.decode()


@pytest.mark.parametrize("value", ["٠.٥", "nan", "inf", "1e999", "0x1"])
def test_settings_form_takes_ascii_finite_numbers(researcher, value):
    response = logged_in(researcher).post("/dashboard/quality/", {"gold_rate": value, "arena_share": "0.5", "min_trust": "0"})
    assert response.status_code == 400 and "Enter a number" in response.content.decode()
    assert not Campaign.objects.filter(gold_rate__gt=0.9).exists()


def test_a_bad_adjudication_is_a_400_naming_the_field(admin_user, make_comparisons):
    (comparison,) = make_comparisons(1)
    response = logged_in(admin_user).post(f"/dashboard/review/{comparison.pk}/", {"winner": "nobody"})
    assert response.status_code == 400 and "winner" in response.content.decode()


@pytest.mark.parametrize("url", ["/dashboard/review/99999999999999999999/", "/dashboard/comparisons/99999999999999999999/gold/"])
def test_path_ids_past_64_bits_are_a_400(admin_user, url):
    response = logged_in(admin_user).post(url, {"winner": "a"})
    assert response.status_code == 400 and "comparison_id" in response.content.decode()


def test_review_queue_and_adjudication_are_for_admins(studio, researcher, admin_user):
    html = logged_in(researcher).get("/dashboard/review/").content.decode()
    assert "Flagged unsafe or private" in html and "Raters disagree" in html and "Record verdict" not in html
    flagged = Comparison.objects.exclude(kind="arena").order_by("id").first()  # rater 0 flagged every label
    assert logged_in(researcher).post(f"/dashboard/review/{flagged.pk}/", {"winner": "a"}).status_code == 403
    response = logged_in(admin_user).post(f"/dashboard/review/{flagged.pk}/", {"winner": "a", "note": "clear"})
    assert response.status_code == 302
    flagged.refresh_from_db()
    assert flagged.adjudicated_winner == "a" and flagged.reviewed_by == admin_user
    assert f"review-{flagged.pk}" not in logged_in(admin_user).get("/dashboard/review/").content.decode()


def test_admins_promote_unanimous_comparisons_to_gold(studio, admin_user, researcher):
    assert logged_in(researcher).post("/dashboard/gold/promote/").status_code == 403
    assert logged_in(admin_user).post("/dashboard/gold/promote/").status_code == 302


def test_activating_a_pruned_version_shows_why_it_cannot(researcher):
    """The dashboard refuses to roll back to a pruned version with a message, not an error page."""
    RewardModelVersion.objects.create(name="rm-gone", path="reward/rm-gone", status="pruned")
    response = logged_in(researcher).post("/dashboard/reward-models/rm-gone/activate/", follow=True)
    assert response.status_code == 200 and "rm-gone was pruned" in response.content.decode()
    assert RewardModelVersion.objects.get(name="rm-gone").status == "pruned"


SAMPLES = "/dashboard/policies/samples/"


@pytest.fixture
def fake_replies(monkeypatch):
    """Replace the policy: reply k to a prompt names the version, the prompt and the seed."""
    from feedback_app import training_bridge

    calls = []

    def replies(*, policy_name, prompts, seed, **_):
        calls.append({"name": policy_name, "prompts": prompts, "seed": seed})
        return [f"{policy_name} #{k} (seed {seed}): {text}" for k, (text, _) in enumerate(prompts)]

    monkeypatch.setattr(training_bridge, "replies_generate", replies)
    return calls


def test_the_versions_page_offers_sample_replies_of_each_version_with_weights(researcher):
    """The form lists the versions newest first, pruned ones left out, the active one chosen."""
    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="retired")
    PolicyVersion.objects.create(name="policy-gone", path="policy/policy-gone", status="pruned")
    PolicyVersion.objects.create(name="policy-00003", path="policy/policy-00003", status="active")
    html = logged_in(researcher).get("/dashboard/models/").content.decode()
    assert 'id="samples"' in html and f'action="{SAMPLES}"' in html and f'hx-post="{SAMPLES}"' in html
    assert '<option value="policy-00003" selected>' in html and html.index("policy-00003</option>") < html.index("policy-base</option>")
    assert '<option value="policy-gone"' not in html
    assert "<script>" not in html and "style=" not in html


def test_without_js_the_samples_form_renders_the_whole_page_with_the_replies(researcher, fake_replies):
    """A plain POST answers with the versions page, the 3 replies of the chosen version and seed in its samples panel."""
    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="active")
    response = logged_in(researcher).post(SAMPLES, {"prompt": "Where is my parcel?", "version": "policy-base", "seed": "4"})
    html = response.content.decode()
    assert response.status_code == 200 and "<h2>Reward models</h2>" in html
    assert "policy-base #0 (seed 4): Where is my parcel?" in html and "policy-base #2 (seed 4)" in html
    assert fake_replies == [{"name": "policy-base", "prompts": [("Where is my parcel?", [])] * 3, "seed": 4}]


def test_with_htmx_the_samples_form_answers_with_its_panel_only(researcher, fake_replies):
    """htmx gets the panel, 200 even when the form is invalid (it swaps only 2xx answers in); without htmx that is a 400."""
    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="active")
    client = logged_in(researcher)
    response = client.post(SAMPLES, {"prompt": "Hi", "version": "policy-base"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section class="panel" id="samples"')
    assert "<h2>Reward models</h2>" not in html and "policy-base #1 (seed 0): Hi" in html
    invalid = client.post(SAMPLES, {"prompt": "", "version": "nope"}, HTTP_HX_REQUEST="true")
    assert invalid.status_code == 200 and "This field is required." in invalid.content.decode()
    assert "Select a valid choice." in invalid.content.decode()
    assert client.post(SAMPLES, {"prompt": "", "version": "policy-base"}).status_code == 400
    assert len(fake_replies) == 1


def test_samples_that_no_worker_answers_say_so(researcher, monkeypatch):
    """No worker in time: the panel says so and names the queue; the page without JS is a 503."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from feedback_app import tasks

    class Unanswered:
        def get(self, *, timeout):
            raise CeleryTimeout(f"waited {timeout}")

    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="active")
    monkeypatch.setattr(tasks.policy_generate, "delay", lambda *args: Unanswered())
    client = logged_in(researcher)
    partial = client.post(SAMPLES, {"prompt": "Hi", "version": "policy-base"}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "No sample replies: no worker answered within" in partial.content.decode()
    page = client.post(SAMPLES, {"prompt": "Hi", "version": "policy-base"})
    assert page.status_code == 503 and "the &#x27;score&#x27; queue running?" in page.content.decode()


def test_sample_replies_are_for_staff_only(rater, fake_replies):
    """Raters are refused (403) and no model runs."""
    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="active")
    assert logged_in(rater).post(SAMPLES, {"prompt": "Hi", "version": "policy-base"}).status_code == 403
    assert fake_replies == []


def test_the_samples_form_asks_for_a_serving_mode_or_the_version_s_own(researcher, fake_replies):
    """"as served" keeps the version's mode (a rerank version with no reward model samples); "rerank" asked for with none is a 409
    that says why; a mode outside the three is a form error."""
    PolicyVersion.objects.create(name="policy-00003", path="policy/policy-00003", status="active", serving_mode="rerank")
    client = logged_in(researcher)
    assert '<option value="rerank">rerank</option>' in client.get("/dashboard/models/").content.decode()
    for mode in ("", "sample"):
        response = client.post(SAMPLES, {"prompt": "Hi", "version": "policy-00003", "mode": mode})
        assert response.status_code == 200 and "policy-00003 #0 (seed 0): Hi" in response.content.decode()
    refused = client.post(SAMPLES, {"prompt": "Hi", "version": "policy-00003", "mode": "rerank"})
    assert refused.status_code == 409 and "reward model" in refused.content.decode()
    assert client.post(SAMPLES, {"prompt": "Hi", "version": "policy-00003", "mode": "best"}).status_code == 400
    assert len(fake_replies) == 2


def test_the_quality_page_shows_each_judge_and_the_overview_says_when_one_is_switched_off(researcher, make_judge, make_audits, settings):
    """Per judge: agreement, κ, abstentions, position consistency and the reliability table; the notice on the dashboard."""
    settings.AI_MIN_AUDITS = 10
    judge = make_judge("vllm")
    make_audits(judge, n=4, agree=3, confidence=0.85)
    client = logged_in(researcher)
    quality = client.get("/dashboard/quality/").content.decode()
    assert 'data-testid="judges"' in quality and "vllm" in quality and 'data-testid="reliability-vllm"' in quality
    assert "0.750" in quality and "measuring: 4 of 10 audits so far" in quality and "<meter" in quality
    assert 'data-testid="chart-reliability-vllm"' in quality and 'id="reliability-data"' in quality  # the plot and its points
    overview = client.get("/dashboard/").content.decode()
    assert 'data-testid="ai-notice"' in overview and "vllm is switched off by its audit" in overview
    settings.AI_FEEDBACK = False
    assert 'data-testid="ai-notice"' not in client.get("/dashboard/").content.decode()


def test_the_settings_form_takes_criteria_as_a_line_and_names_what_is_wrong(researcher):
    
    client = logged_in(researcher)
    ok = client.post("/dashboard/quality/", {"gold_rate": "0.1", "arena_share": "0.2", "min_trust": "0", "criteria": "accuracy, tone"})
    assert ok.status_code == 302 and campaign_default().criteria == ["accuracy", "tone"]
    assert 'value="accuracy, tone"' in client.get("/dashboard/quality/").content.decode()
    bad = client.post("/dashboard/quality/", {"gold_rate": "0.1", "arena_share": "0.2", "min_trust": "0", "criteria": "Tone!"})
    assert bad.status_code == 400 and "a name is a lowercase letter" in bad.content.decode()
    assert campaign_default().criteria == ["accuracy", "tone"]


def test_the_quality_page_shows_the_raters_with_warnings_first_and_all_on_request(researcher, make_user, make_comparisons, monkeypatch):
    from feedback_app.views import dashboard

    monkeypatch.setattr(dashboard, "RATERS_SHOWN", 2)
    comparisons = make_comparisons(25, required_labels=3)
    raters = [make_user() for _ in range(3)]
    for i, c in enumerate(comparisons):
        PreferenceLabel.objects.create(comparison=c, rater=raters[0], winner="a", a_on_left=True, time_on_task_ms=500)  # always left, fast
        if i < 10:
            PreferenceLabel.objects.create(comparison=c, rater=raters[1], winner="b", a_on_left=True, time_on_task_ms=9000)
        if i < 5:
            PreferenceLabel.objects.create(comparison=c, rater=raters[2], winner="b", a_on_left=False, time_on_task_ms=9000)
    page = logged_in(researcher).get("/dashboard/quality/").content.decode()
    assert raters[0].username in page and raters[1].username in page and raters[2].username not in page
    assert "2 of 3 raters" in page
    assert "Over 10 comparisons labelled by two or more raters." in page
    everyone = logged_in(researcher).get("/dashboard/quality/?raters=all").content.decode()
    assert all(r.username in everyone for r in raters) and "2 of 3 raters" not in everyone


def test_the_quality_page_of_a_studio_without_shared_comparisons_says_so(researcher):
    page = logged_in(researcher).get("/dashboard/quality/").content.decode()
    assert "No comparison has been labelled by two or more raters yet" in page and "Over 0" not in page
