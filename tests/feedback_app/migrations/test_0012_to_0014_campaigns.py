"""Migrations 0012–0016: an existing studio becomes the default campaign, with its settings, prompts, raters' state and model lines."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("feedback_app", "0011_campaign_settings_and_qualification")]


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_an_existing_database_moves_into_the_default_campaign():
    latest = [key for key in MigrationExecutor(connection).loader.graph.leaf_nodes() if key[0] == "feedback_app"]
    old = _migrate(BEFORE)
    try:
        User = old.get_model("auth", "User")
        Profile, Settings = old.get_model("feedback_app", "Profile"), old.get_model("feedback_app", "StudioSettings")
        Prompt, Batch = old.get_model("feedback_app", "Prompt"), old.get_model("feedback_app", "ImportBatch")
        Settings.objects.update_or_create(pk=1, defaults={"gold_rate": 0.3, "guidelines": "Be kind.", "guidelines_version": 2, "qualification_pairs": 3})
        reader = User.objects.create(username="reader")
        Profile.objects.create(user=reader, role="rater", pseudonym="r-1", guidelines_seen=2, qualification="passed",
                               qualification_correct=3, qualification_n=3)
        newcomer = User.objects.create(username="newcomer")
        Profile.objects.create(user=newcomer, role="researcher", pseudonym="r-2")
        batch = Batch.objects.create(kind="prompts", filename="p.jsonl", sha256="0" * 64)
        prompt = Prompt.objects.create(text="Where is my parcel?", import_batch=batch)
        reward = old.get_model("feedback_app", "RewardModelVersion").objects.create(name="rm-00001", path="reward/rm-00001", status="active")
        policy = old.get_model("feedback_app", "PolicyVersion").objects.create(name="policy-base", path="policy/policy-base", status="active")
        run = old.get_model("feedback_app", "TrainingRun").objects.create(kind="reward_fast", trigger="auto", status="queued")

        new = _migrate(latest)
        Campaign, Member = new.get_model("feedback_app", "Campaign"), new.get_model("feedback_app", "CampaignMember")
        default = Campaign.objects.get()
        assert (default.pk, default.slug, default.gold_rate, default.guidelines, default.guidelines_version, default.qualification_pairs) == (
            1, "default", 0.3, "Be kind.", 2, 3)
        assert new.get_model("feedback_app", "Prompt").objects.get(pk=prompt.pk).campaign_id == 1
        assert new.get_model("feedback_app", "ImportBatch").objects.get(pk=batch.pk).campaign_id == 1
        for model, pk in (("RewardModelVersion", reward.pk), ("PolicyVersion", policy.pk), ("TrainingRun", run.pk)):
            assert new.get_model("feedback_app", model).objects.get(pk=pk).campaign_id == 1, model  # the default campaign's lines
        member = Member.objects.get()  # only a user with state to keep gets a row; the others are in the default campaign by rule
        assert (member.user_id, member.campaign_id, member.role, member.guidelines_seen, member.qualification, member.qualification_n) == (
            reader.pk, 1, "rater", 2, "passed", 3)
        second = Campaign.objects.create(slug="billing", name="Billing")
        assert second.pk == 2  # the sequence was moved past the default campaign's key

        with pytest.raises(RuntimeError, match="other campaigns exist \\(billing\\)"):
            _migrate(BEFORE)
        new = _migrate(latest)  # the later migrations went back before the check refused; forward again
        new.get_model("feedback_app", "Campaign").objects.filter(slug="billing").delete()
        back = _migrate(BEFORE)  # and back: the state returns to the profiles
        assert back.get_model("feedback_app", "Profile").objects.get(user_id=reader.pk).qualification == "passed"
    finally:
        _migrate(latest)
