"""Campaigns from the command line and the admin: made, joined, imported into and exported from, by slug."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from feedback_app.models import AuditEntry, Campaign, CampaignMember, Prompt, Role
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services.campaigns import CampaignError, campaign_create, campaign_settings_update

pytestmark = pytest.mark.django_db


def test_campaign_create_checks_its_slug_and_name_and_copies_a_parent_s_rules(admin_user):
    with pytest.raises(CampaignError, match="lower-case letters"):
        campaign_create(slug="Billing Team", name="Billing")
    with pytest.raises(CampaignError, match="needs a name"):
        campaign_create(slug="billing", name="  ")
    parent = campaign_create(slug="billing", name="Billing", actor=admin_user)
    campaign_settings_update(campaign=parent, user=admin_user, gold_rate=0.25, criteria=["accuracy"])
    with pytest.raises(CampaignError, match="exists already"):
        campaign_create(slug="billing", name="Again")
    child = campaign_create(slug="billing-2", name="Billing, round two", parent=Campaign.objects.get(pk=parent.pk), actor=admin_user)
    assert (child.parent_id, child.gold_rate, child.criteria, child.guidelines_version) == (parent.pk, 0.25, ["accuracy"], 0)
    assert AuditEntry.objects.filter(action="campaign.create", target="campaign:billing-2").get().details == {
        "name": "Billing, round two", "parent": "billing", "models": []}  # billing had no active models to start from


def test_the_commands_make_a_campaign_add_members_import_into_it_and_export_from_it(tmp_path, capsys):
    call_command("campaign_create", "safety", "--name", "Safety red-teaming")
    assert "Created campaign 'safety'" in capsys.readouterr().out
    with pytest.raises(CommandError, match="exists already"):
        call_command("campaign_create", "safety", "--name", "Again")
    with pytest.raises(CommandError, match="no campaign 'nope'; there are: default, safety"):
        call_command("add_user", "lea", "--role", "rater", "--campaign", "nope")
    assert not CampaignMember.objects.exists()
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="lea").exists()  # nothing half-made
    call_command("add_user", "lea", "--role", "researcher", "--campaign", "safety", "--campaign", "default")
    assert sorted(CampaignMember.objects.filter(user__username="lea").values_list("campaign__slug", "role")) == [
        ("default", "researcher"), ("safety", "researcher")]
    lea = get_user_model().objects.get(username="lea")
    assert (lea.profile.role, lea.is_staff) == ("rater", False)  # a researcher of those campaigns, not of the studio
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "How do I report a harmful reply?", "responses": ["Use the flag.", "Ignore it."]}) + "\n")
    call_command("import_prompts", str(prompts), "--campaign", "safety")
    assert Prompt.objects.get().campaign.slug == "safety"
    with pytest.raises(CommandError, match="no campaign 'nope'"):
        call_command("import_prompts", str(prompts), "--campaign", "nope")
    out = tmp_path / "safety.jsonl"
    call_command("export_preferences", str(out), "--format", "raw", "--campaign", "safety")
    assert out.read_text() == ""  # nothing labelled yet, and the default campaign's labels never appear here
    with pytest.raises(CommandError, match="no campaign 'nope'"):
        call_command("export_preferences", str(tmp_path / "x.jsonl"), "--campaign", "nope")


def test_a_rater_with_one_campaign_is_sent_to_it_and_a_member_of_several_picks(make_user, admin_user):
    billing = campaign_create(slug="billing", name="Billing")
    safety = campaign_create(slug="safety", name="Safety")
    from feedback_app.services.campaigns import member_set

    one = make_user(Role.RATER)
    member_set(campaign=billing, user=one, role=Role.RATER)
    client = Client()
    client.force_login(one)
    assert client.get("/label/")["Location"] == "/campaigns/"
    assert client.get("/campaigns/")["Location"] == "/c/billing/label/"
    several = make_user(Role.RATER)
    member_set(campaign=billing, user=several, role=Role.RATER)
    member_set(campaign=safety, user=several, role=Role.RATER)
    client.force_login(several)
    page = client.get("/campaigns/").content.decode()
    assert 'href="/c/billing/label/"' in page and 'href="/c/safety/label/"' in page and "Default campaign" not in page


def test_the_admin_makes_a_campaign_with_members_through_the_services(admin_user, rater):
    client = Client()
    client.force_login(admin_user)
    form = {"slug": "billing", "name": "Billing", "state": "active", "gold_rate": "0.2", "arena_share": "0.2", "min_trust": "0",
            "qualification_pairs": "0", "qualification_accuracy": "0.7", "label_target": "100", "criteria": "[]", "flags": "[]",
            "guidelines": "", "members-TOTAL_FORMS": "1", "members-INITIAL_FORMS": "0", "members-MIN_NUM_FORMS": "0",
            "members-MAX_NUM_FORMS": "1000", "members-0-user": str(rater.pk), "members-0-role": "rater"}
    bad = client.post("/admin/feedback_app/campaign/add/", {**form, "gold_rate": "1.5"})
    assert bad.status_code == 200 and "gold_rate must be within 0 and 1" in bad.content.decode()
    assert client.post("/admin/feedback_app/campaign/add/", form).status_code == 302
    billing = Campaign.objects.get(slug="billing")
    assert (billing.gold_rate, billing.label_target) == (0.2, 100)
    assert CampaignMember.objects.get(campaign=billing).user == rater
    assert {"campaign.create", "campaign.member", "settings.update"} <= set(AuditEntry.objects.values_list("action", flat=True))
    assert campaign_default().pk != billing.pk


def test_home_sends_a_member_of_other_campaigns_to_pick_one(make_user):
    from feedback_app.services.campaigns import member_set

    billing = campaign_create(slug="billing", name="Billing")
    researcher = make_user(Role.RESEARCHER)
    member_set(campaign=billing, user=researcher, role=Role.RESEARCHER)
    client = Client()
    client.force_login(researcher)
    assert client.get("/")["Location"] == "/campaigns/"
    page = client.get("/campaigns/").content.decode()
    assert 'href="/c/billing/dashboard/"' in page and 'data-testid="nav-campaigns"' in page  # their way back here from any page


def test_the_admin_lists_and_shows_campaigns_and_keeps_the_slug(admin_user):
    billing = campaign_create(slug="billing", name="Billing")
    client = Client()
    client.force_login(admin_user)
    assert "Billing" in client.get("/admin/feedback_app/campaign/").content.decode()
    page = client.get(f"/admin/feedback_app/campaign/{billing.pk}/change/").content.decode()
    assert 'name="slug"' not in page and "billing" in page  # shown, not editable: it is in URLs and exports
    assert client.get("/admin/feedback_app/campaign/add/").status_code == 200
