"""Isolation is the point of campaigns: a member of one never sees or touches another's prompts, labels, rules or exports.

Two campaigns: the default one and "billing". Each role in each, plus a studio admin, goes through
every campaign-scoped page and API call of both.
"""

import csv
import io

import pytest
from django.test import Client

from tests.conftest import api_client_for
from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PreferenceLabel, Prompt, Response, Role
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services.campaigns import campaign_create, campaign_guidelines_set, campaign_settings_update, member_set
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from tests.caches import caches_clear

pytestmark = pytest.mark.django_db


def _comparisons(campaign, n: int, *, word: str) -> list[Comparison]:
    made = []
    for i in range(n):
        prompt = Prompt.objects.create(campaign=campaign, text=f"{word} request {i}")
        a = Response.objects.create(prompt=prompt, text=f"{word} reply A{i}")
        b = Response.objects.create(prompt=prompt, text=f"{word} reply B{i}")
        made.append(Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=2))
    return made


@pytest.fixture
def studio(make_user):
    """The default campaign and "billing", each with comparisons, a rater and a researcher; and a studio admin."""
    admin = make_user(Role.ADMIN)
    default = campaign_default()
    campaign_settings_update(campaign=default, user=admin, gold_rate=0.0)
    billing = campaign_create(slug="billing", name="Billing replies", actor=admin)
    people = {"admin": admin, "default_rater": make_user(Role.RATER), "default_researcher": make_user(Role.RESEARCHER)}
    for role in (Role.RATER, Role.RESEARCHER):
        user = make_user(Role.RATER)  # their studio role does not matter: their membership of billing does
        member_set(campaign=billing, user=user, role=role, actor=admin)
        people[f"billing_{role.value}"] = user
    caches_clear()  # the rules' on-commit cache clear, which a test transaction never runs
    return {"default": default, "billing": billing, "people": people,
            "default_comparisons": _comparisons(default, 3, word="Default"), "billing_comparisons": _comparisons(billing, 3, word="Billing")}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


PAGES = {"default": "/label/", "billing": "/c/billing/label/"}
API = {"default": "/api/v1/", "billing": "/api/v1/campaigns/billing/"}


@pytest.mark.parametrize("who, allowed", [
    ("default_rater", {"default"}), ("default_researcher", {"default"}),
    ("billing_rater", {"billing"}), ("billing_researcher", {"billing"}), ("admin", {"default", "billing"}),
])
def test_every_role_reaches_only_its_own_campaigns_pages_and_api(studio, who, allowed):
    user = studio["people"][who]
    client, api = _client(user), api_client_for(user)
    for name in ("default", "billing"):
        page = client.get(PAGES[name])
        words = {"default": "Default", "billing": "Billing"}
        if name in allowed:
            assert page.status_code == 200, (who, name)
            html = page.content.decode()
            other = words["billing" if name == "default" else "default"]
            assert words[name] + " request" in html and other + " request" not in html, (who, name)
            leased = api.get(API[name] + "comparisons/next/").json()
            assert leased["prompt"].startswith(words[name]), (who, name)
            assert api.get(API[name] + "guidelines/").status_code == 200
        elif name == "default" and who.startswith("billing"):
            assert page.status_code == 302 and page["Location"] == "/campaigns/"  # /label/ sends them to pick their campaign
            assert client.get("/label/undo/", follow=False).status_code in (403, 405)
            assert api.get(API[name] + "comparisons/next/").status_code == 403
        else:
            assert page.status_code == 403, (who, name)
            assert api.get(API[name] + "comparisons/next/").status_code == 403
            assert api.get(API[name] + "guidelines/").status_code == 403
            assert api.get(API[name] + "export/preferences/?format=raw").status_code == 403
    listed = {c["slug"] for c in api.get("/api/v1/campaigns/").json()}
    assert listed == allowed


STAFF_PAGES = ("dashboard/", "dashboard/quality/", "dashboard/review/", "dashboard/models/", "dashboard/arena/")
STAFF_API = ("stats/", "stats/overview/", "stats/reward-models/", "stats/arena/", "stats/judges/", "training-runs/")
ROOT = {"default": "/", "billing": "/c/billing/"}


@pytest.mark.parametrize("who, staff_of", [
    ("default_rater", set()), ("default_researcher", {"default"}),
    ("billing_rater", set()), ("billing_researcher", {"billing"}), ("admin", {"default", "billing"}),
])
def test_every_role_reaches_only_its_own_campaigns_dashboards_models_and_figures(studio, who, staff_of):
    """The researcher's pages and calls, the model lines' included: 200 for a campaign's researchers and admins, 403 for anyone else."""
    user = studio["people"][who]
    client, api = _client(user), api_client_for(user)
    for name in ("default", "billing"):
        for page in STAFF_PAGES:
            assert client.get(ROOT[name] + page).status_code == (200 if name in staff_of else 403), (who, name, page)
        for call in STAFF_API:
            assert api.get(API[name] + call).status_code == (200 if name in staff_of else 403), (who, name, call)
        queued = api.post(API[name] + "training-runs/", {"kind": "reward_fast"}, format="json")
        assert queued.status_code == (201 if name in staff_of else 403), (who, name)


def test_a_member_of_one_campaign_cannot_label_skip_or_see_another_s_comparison(studio):
    rater, billing = studio["people"]["billing_rater"], studio["billing"]
    foreign = studio["default_comparisons"][0]
    api = api_client_for(rater)
    assert api.post(f"/api/v1/campaigns/billing/comparisons/{foreign.pk}/label/", {"choice": "left"}, format="json").status_code == 404
    assert api.post(f"/api/v1/campaigns/billing/comparisons/{foreign.pk}/skip/").status_code == 409
    client = _client(rater)
    client.post(f"/c/billing/label/{foreign.pk}/", {"choice": "left"})
    page = client.get(f"/c/billing/label/?c={foreign.pk}").content.decode()  # ?c= of another campaign's comparison is ignored
    assert "Default request" not in page
    assert not PreferenceLabel.objects.filter(comparison=foreign).exists()
    held = assignment_lease_next(rater=rater, campaign=billing)
    assert held.comparison.prompt.campaign_id == billing.pk


def test_a_rater_s_leases_history_undo_and_today_count_are_per_campaign(studio, make_user):
    admin, default, billing = studio["people"]["admin"], studio["default"], studio["billing"]
    both = make_user(Role.RATER)
    member_set(campaign=billing, user=both, role=Role.RATER, actor=admin)
    member_set(campaign=default, user=both, role=Role.RATER, actor=admin)
    in_default = assignment_lease_next(rater=both, campaign=default)
    in_billing = assignment_lease_next(rater=both, campaign=billing)
    assert in_default.comparison.prompt.campaign_id == DEFAULT_CAMPAIGN_ID and in_billing.comparison.prompt.campaign_id == billing.pk
    label_record(rater=both, campaign=billing, comparison_id=in_billing.comparison_id, submission=LabelSubmission(choice="left"))
    client = _client(both)
    assert 'id="today-count">0<' in client.get("/label/").content.decode()
    assert 'id="today-count">1<' in client.get("/c/billing/label/").content.decode()
    client.post("/label/undo/")  # nothing of the default campaign to undo: billing's label stays
    assert PreferenceLabel.objects.filter(rater=both).count() == 1
    client.post("/c/billing/label/undo/")
    assert not PreferenceLabel.objects.filter(rater=both).exists()


def test_leaving_a_campaign_stops_the_labels_of_a_lease_still_held(studio):
    rater, billing, admin = studio["people"]["billing_rater"], studio["billing"], studio["people"]["admin"]
    held = assignment_lease_next(rater=rater, campaign=billing)
    from feedback_app.services.campaigns import member_remove

    member_remove(campaign=billing, user=rater, actor=admin)
    api = api_client_for(rater)
    response = api.post(f"/api/v1/campaigns/billing/comparisons/{held.comparison_id}/label/", {"choice": "left"}, format="json")
    assert response.status_code == 403  # no longer a member: refused before anything is read
    from feedback_app.services.labeling import NotLeased

    with pytest.raises(NotLeased, match="no longer a member of campaign billing"):
        label_record(rater=rater, campaign=billing, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left"))


def test_rules_guidelines_and_criteria_are_per_campaign(studio):
    admin, billing = studio["people"]["admin"], studio["billing"]
    campaign_guidelines_set(campaign=billing, user=admin, text="Quote the invoice number.")
    campaign_settings_update(campaign=billing, user=admin, criteria=["accuracy"], flags=["refund"])
    caches_clear()
    billing_rater, default_rater = studio["people"]["billing_rater"], studio["people"]["default_rater"]
    assert api_client_for(billing_rater).get("/api/v1/campaigns/billing/guidelines/").json()["markdown"] == "Quote the invoice number."
    assert api_client_for(default_rater).get("/api/v1/guidelines/").json()["version"] == 0
    page = _client(billing_rater).get("/c/billing/label/").content.decode()
    assert "Quote the invoice number." in page and 'name="criterion_accuracy"' in page and 'value="refund"' in page
    assert 'name="criterion_accuracy"' not in _client(default_rater).get("/label/").content.decode()
    api = api_client_for(billing_rater)
    held = api.get("/api/v1/campaigns/billing/comparisons/next/").json()
    wrong = api.post(f"/api/v1/campaigns/billing/comparisons/{held['id']}/label/", {"choice": "left", "criteria": {"honesty": "left"}}, format="json")
    assert wrong.status_code == 400 and "criteria" in wrong.json()
    ok = api.post(f"/api/v1/campaigns/billing/comparisons/{held['id']}/label/",
                  {"choice": "left", "criteria": {"accuracy": "left"}, "flags": ["refund"]}, format="json")
    assert ok.status_code == 201
    assert PreferenceLabel.objects.get(rater=billing_rater).guidelines_version == 1


def test_exports_and_imports_hold_one_campaign(studio):
    admin, billing = studio["people"]["admin"], studio["billing"]
    for name, campaign in (("default", studio["default"]), ("billing", billing)):
        rater = studio["people"][f"{name}_rater"]
        held = assignment_lease_next(rater=rater, campaign=campaign)
        label_record(rater=rater, campaign=campaign, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left"))
    researcher = api_client_for(studio["people"]["billing_researcher"])
    rows = list(csv.DictReader(io.StringIO(b"".join(researcher.get("/api/v1/campaigns/billing/export/preferences/?format=csv").streaming_content).decode())))
    assert len(rows) == 1 and rows[0]["prompt"].startswith("Billing")
    default_rows = b"".join(api_client_for(studio["people"]["default_researcher"]).get("/api/v1/export/preferences/?format=csv").streaming_content).decode()
    assert "Billing" not in default_rows and "Default request" in default_rows
    admin_api = api_client_for(admin)
    made = admin_api.post("/api/v1/campaigns/billing/prompts/", [{"prompt": "Refund my invoice", "responses": ["Yes.", "No."]}], format="json")
    assert made.status_code == 201
    assert Prompt.objects.get(text="Refund my invoice").campaign_id == billing.pk
    # the same body into the default campaign is no duplicate: duplicates are per campaign
    assert admin_api.post("/api/v1/prompts/", [{"prompt": "Refund my invoice", "responses": ["Yes.", "No."]}], format="json").status_code == 201
    assert api_client_for(studio["people"]["billing_rater"]).post(
        "/api/v1/campaigns/billing/prompts/", [{"prompt": "x", "responses": ["a", "b"]}], format="json").status_code == 403


def test_a_campaign_that_does_not_exist_is_404(studio):
    user = studio["people"]["admin"]
    assert _client(user).get("/c/nope/label/").status_code == 404
    assert api_client_for(user).get("/api/v1/campaigns/nope/comparisons/next/").status_code == 404


def test_the_default_campaign_s_models_never_learn_from_another_campaign(studio):
    """The default campaign's reward-model and policy lines never see billing's labels or prompts (billing has lines of its own)."""
    from feedback_app.selectors.supply import open_comparison_count, prompts_needing_comparisons
    from feedback_app.selectors.training import prompt_ids_published, reward_labels_unlearned
    from feedback_app.services.training_data import labels_for_training
    from feedback_app.services.policy_cadence import policy_labels_since_last_run
    from feedback_app.services.versions import policy_active_or_base

    billing = studio["billing"]
    rater = studio["people"]["billing_rater"]
    for _ in range(2):
        held = assignment_lease_next(rater=rater, campaign=billing)
        label_record(rater=rater, campaign=billing, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left"))
    labels, data_range = labels_for_training()
    assert list(labels) == [] and data_range["n_labels"] == 0
    assert reward_labels_unlearned() == 0 and policy_labels_since_last_run() == 0
    billing_prompts = set(Prompt.objects.filter(campaign=billing).values_list("pk", flat=True))
    assert not billing_prompts & set(prompt_ids_published())
    from django.utils import timezone

    policy = policy_active_or_base()
    assert not billing_prompts & set(prompts_needing_comparisons(policy=policy, now=timezone.now()).values_list("pk", flat=True))
    assert open_comparison_count() == 3  # the default campaign's three


def test_a_campaign_s_dashboard_counts_and_rates_only_its_labels(studio):
    for name, campaign, n in (("default", studio["default"], 1), ("billing", studio["billing"], 2)):
        rater = studio["people"][f"{name}_rater"]
        for _ in range(n):
            held = assignment_lease_next(rater=rater, campaign=campaign)
            label_record(rater=rater, campaign=campaign, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left"))
    billing_researcher, default_researcher = studio["people"]["billing_researcher"], studio["people"]["default_researcher"]
    client = _client(billing_researcher)
    overview = client.get("/c/billing/dashboard/").content.decode()
    assert 'data-testid="labels-today">2<' in overview and 'ws-connect="/ws/c/billing/dashboard/"' in overview
    assert 'href="/c/billing/dashboard/models/"' in overview  # its own model lines (tests/feedback_app/campaigns/test_model_lines.py)
    quality = client.get("/c/billing/dashboard/quality/").content.decode()
    billing_rater, default_rater = studio["people"]["billing_rater"], studio["people"]["default_rater"]
    assert billing_rater.username in quality and default_rater.username not in quality
    assert 'action="/c/billing/dashboard/guidelines/"' in quality
    assert client.post("/c/billing/dashboard/quality/", {"gold_rate": "0.3", "arena_share": "0.2", "min_trust": "0"}).status_code == 302
    assert (studio["billing"].__class__.objects.get(pk=studio["billing"].pk).gold_rate, campaign_default().gold_rate) == (0.3, 0.0)
    for url in ("/dashboard/", "/dashboard/quality/", "/dashboard/models/", "/dashboard/review/"):
        assert client.get(url).status_code == 403, url  # the default campaign's pages are not theirs
    assert _client(default_researcher).get("/c/billing/dashboard/").status_code == 403
    default_overview = _client(default_researcher).get("/dashboard/").content.decode()
    assert 'data-testid="labels-today">1<' in default_overview
    foreign = studio["default_comparisons"][0]
    admin = _client(studio["people"]["admin"])
    assert admin.post(f"/c/billing/dashboard/review/{foreign.pk}/", {"winner": "a"}).status_code == 404
    assert admin.post(f"/c/billing/dashboard/comparisons/{foreign.pk}/gold/", {"winner": "a"}).status_code == 404


def test_a_label_pushes_the_counters_of_its_own_campaign_only(studio, monkeypatch, django_capture_on_commit_callbacks):
    from feedback_app import events

    pushed = []
    monkeypatch.setattr(events, "broadcast", lambda group, kind, html: pushed.append((group, kind, 'data-testid="labels-today">1<' in html)))
    billing, rater = studio["billing"], studio["people"]["billing_rater"]
    held = assignment_lease_next(rater=rater, campaign=billing)
    with django_capture_on_commit_callbacks(execute=True):
        label_record(rater=rater, campaign=billing, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left"))
    assert pushed == [(f"dashboard.{billing.pk}", "dashboard.update", True)]


def test_a_campaign_sets_its_own_labels_per_comparison_and_lease_time(studio):
    from datetime import timedelta

    admin, billing = studio["people"]["admin"], studio["billing"]
    with pytest.raises(Exception, match="lease_seconds must be empty .* 30 or more"):
        campaign_settings_update(campaign=billing, user=admin, lease_seconds=5)
    billing = campaign_settings_update(campaign=billing, user=admin, labels_per_comparison=3, lease_seconds=120)
    made = api_client_for(admin).post("/api/v1/campaigns/billing/prompts/", [{"prompt": "Bill twice?", "responses": ["Refund.", "No."]}],
                                      format="json")
    assert made.status_code == 201 and Comparison.objects.get(prompt__text="Bill twice?").required_labels == 3
    held = assignment_lease_next(rater=studio["people"]["billing_rater"], campaign=billing)
    assert timedelta(seconds=119) < held.lease_expires_at - held.leased_at <= timedelta(seconds=120)
    default_held = assignment_lease_next(rater=studio["people"]["default_rater"], campaign=campaign_default())
    from django.conf import settings

    assert default_held.lease_expires_at - default_held.leased_at == timedelta(seconds=settings.LEASE_SECONDS)


def test_the_stats_api_of_a_campaign_holds_its_figures_only(studio):
    billing, rater = studio["billing"], studio["people"]["billing_rater"]
    held = assignment_lease_next(rater=rater, campaign=billing)
    label_record(rater=rater, campaign=billing, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left"))
    researcher = api_client_for(studio["people"]["billing_researcher"])
    index = researcher.get("/api/v1/campaigns/billing/stats/").json()
    assert set(index) == {"overview", "labels", "agreement", "raters", "review", "reward-models", "calibration", "arena", "judges"}
    overview = researcher.get("/api/v1/campaigns/billing/stats/overview/").json()["data"]
    assert overview["labels_today"] == 1 and overview["training_run"] is None
    assert [r["pseudonym"] for r in researcher.get("/api/v1/campaigns/billing/stats/raters/").json()["data"]] == [rater.profile.pseudonym]
    assert researcher.get("/api/v1/campaigns/billing/stats/arena/").json()["data"]["versions"] == []  # its own line: no policy yet
    assert researcher.get("/api/v1/campaigns/billing/stats/judges/").json()["data"] == {"notice": "", "judges": []}  # AI feedback off
    assert researcher.get("/api/v1/stats/overview/").status_code == 403
    default = api_client_for(studio["people"]["default_researcher"]).get("/api/v1/stats/overview/").json()["data"]
    assert default["labels_today"] == 0


def test_a_researcher_of_two_campaigns_switches_between_their_dashboards(studio):
    researcher = studio["people"]["billing_researcher"]
    member_set(campaign=studio["default"], user=researcher, role=Role.RESEARCHER, actor=studio["people"]["admin"])
    page = _client(researcher).get("/c/billing/dashboard/quality/").content.decode()
    assert 'data-testid="campaign-switcher"' in page and 'href="/dashboard/quality/">Default campaign<' in page
    only = _client(studio["people"]["default_researcher"]).get("/dashboard/").content.decode()
    assert 'data-testid="campaign-switcher"' not in only


def test_an_archived_campaign_takes_no_labels_or_imports(studio):
    admin, billing, rater = studio["people"]["admin"], studio["billing"], studio["people"]["billing_rater"]
    held = assignment_lease_next(rater=rater, campaign=billing)
    billing = campaign_settings_update(campaign=billing, user=admin, state="archived")
    from feedback_app.services.labeling import NotLeased

    with pytest.raises(NotLeased, match="campaign billing is archived"):
        label_record(rater=rater, campaign=billing, comparison_id=held.comparison_id, submission=LabelSubmission(choice="left"))
    assert assignment_lease_next(rater=rater, campaign=billing) is None  # not even the lease still held is shown
    refused = api_client_for(admin).post("/api/v1/campaigns/billing/prompts/", [{"prompt": "x", "responses": ["a", "b"]}], format="json")
    assert refused.status_code == 409 and "archived" in refused.json()["detail"]
    assert not Prompt.objects.filter(text="x").exists()
