"""Campaigns (2 of 3, data): the settings row is the default campaign (made if it never existed); a user's
guidelines and qualification move from their profile onto their membership of it, and back."""

from django.core.management.color import no_style
from django.db import migrations


def default_campaign(apps, schema_editor):
    Campaign = apps.get_model("feedback_app", "Campaign")
    campaign, created = Campaign.objects.get_or_create(pk=1, defaults={"slug": "default", "name": "Default campaign"})
    if not created:
        Campaign.objects.filter(pk=1).update(slug="default", name="Default campaign")
    connection = schema_editor.connection
    for sql in connection.ops.sequence_reset_sql(no_style(), [Campaign]):
        schema_editor.execute(sql)


def memberships_from_profiles(apps, schema_editor):
    Profile = apps.get_model("feedback_app", "Profile")
    CampaignMember = apps.get_model("feedback_app", "CampaignMember")
    kept = Profile.objects.exclude(guidelines_seen=0, qualification="")
    CampaignMember.objects.bulk_create([
        CampaignMember(campaign_id=1, user_id=p.user_id, role=p.role, guidelines_seen=p.guidelines_seen, qualification=p.qualification,
                       qualification_correct=p.qualification_correct, qualification_n=p.qualification_n, qualification_at=p.qualification_at)
        for p in kept.iterator()
    ])


def profiles_from_memberships(apps, schema_editor):
    Profile = apps.get_model("feedback_app", "Profile")
    CampaignMember = apps.get_model("feedback_app", "CampaignMember")
    for m in CampaignMember.objects.filter(campaign_id=1).iterator():
        Profile.objects.filter(user_id=m.user_id).update(
            guidelines_seen=m.guidelines_seen, qualification=m.qualification, qualification_correct=m.qualification_correct,
            qualification_n=m.qualification_n, qualification_at=m.qualification_at)


class Migration(migrations.Migration):
    # Data only: on PostgreSQL rows written here leave deferred constraint checks that a schema
    # change in the same transaction would trip over.

    dependencies = [
        ("feedback_app", "0012_campaigns"),
    ]

    operations = [
        migrations.RunPython(default_campaign, migrations.RunPython.noop),
        migrations.RunPython(memberships_from_profiles, profiles_from_memberships),
    ]
