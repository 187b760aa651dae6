"""Campaigns: the studio's one settings row becomes the default campaign; prompts and members belong to campaigns.

Every prompt (and so every comparison and label) moves into the default campaign; a user's
guidelines and qualification move from their profile onto their membership of it.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.core.management.color import no_style
from django.db import migrations, models

STATE_CHOICES = [
    ("active", "Active: raters label, the supply generates"),
    ("paused", "Paused: no new leases or comparisons; leases held may still be labelled"),
    ("archived", "Archived: read-only; nobody labels, nothing is generated"),
]
QUALIFICATION_CHOICES = [
    ("", "Not asked"), ("exempt", "Exempt: labelled before qualification was asked for"),
    ("pending", "Labelling the qualification's gold pairs"), ("passed", "Admitted"), ("failed", "Not admitted"),
]


def default_campaign(apps, schema_editor):
    Campaign = apps.get_model("feedback_app", "Campaign")
    campaign, created = Campaign.objects.get_or_create(pk=1, defaults={"slug": "default", "name": "Default campaign"})
    if not created:
        Campaign.objects.filter(pk=1).update(slug="default", name="Default campaign")
    connection = schema_editor.connection
    for sql in connection.ops.sequence_reset_sql(no_style(), [Campaign]):
        schema_editor.execute(sql)


def one_campaign_only(apps, schema_editor):
    Campaign = apps.get_model("feedback_app", "Campaign")
    others = list(Campaign.objects.exclude(pk=1).values_list("slug", flat=True))
    if others:
        raise RuntimeError(f"cannot go back before campaigns while other campaigns exist ({', '.join(others)}); delete them first")


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

    dependencies = [
        ("feedback_app", "0011_campaign_settings_and_qualification"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameModel("StudioSettings", "Campaign"),
        migrations.RemoveConstraint(model_name="campaign", name="studio_settings_single_row"),
        migrations.AlterModelOptions(name="campaign", options={"ordering": ["id"]}),
        migrations.AddField(
            model_name="campaign", name="slug",
            field=models.SlugField(default="default", help_text="The campaign's name in URLs: /c/<slug>/label/.", max_length=64, unique=True),
            preserve_default=False,
        ),
        migrations.AddField(model_name="campaign", name="name", field=models.CharField(default="Default campaign", max_length=200), preserve_default=False),
        migrations.AddField(
            model_name="campaign", name="parent",
            field=models.ForeignKey(blank=True, help_text="The campaign whose active models this one started from (none: the base models).", null=True,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="children", to="feedback_app.campaign"),
        ),
        migrations.AddField(model_name="campaign", name="created_at", field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now), preserve_default=False),
        migrations.AlterField(model_name="campaign", name="state", field=models.CharField(choices=STATE_CHOICES, default="active", max_length=16)),
        migrations.RunPython(default_campaign, one_campaign_only),
        migrations.CreateModel(
            name="CampaignMember",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("role", models.CharField(choices=[("rater", "Rater"), ("researcher", "Researcher"), ("admin", "Admin")], default="rater", max_length=16)),
                ("guidelines_seen", models.PositiveIntegerField(default=0, help_text="The guidelines' version this member last confirmed reading.")),
                ("qualification", models.CharField(blank=True, choices=QUALIFICATION_CHOICES, default="", max_length=8)),
                ("qualification_correct", models.PositiveIntegerField(blank=True, null=True)),
                ("qualification_n", models.PositiveIntegerField(blank=True, null=True)),
                ("qualification_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("campaign", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="members", to="feedback_app.campaign")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="campaign_memberships", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["campaign_id", "id"], "constraints": [models.UniqueConstraint(fields=("campaign", "user"), name="campaign_member_once")]},
        ),
        migrations.RunPython(memberships_from_profiles, profiles_from_memberships),
        migrations.RemoveField(model_name="profile", name="guidelines_seen"),
        migrations.RemoveField(model_name="profile", name="qualification"),
        migrations.RemoveField(model_name="profile", name="qualification_correct"),
        migrations.RemoveField(model_name="profile", name="qualification_n"),
        migrations.RemoveField(model_name="profile", name="qualification_at"),
        migrations.AddField(
            model_name="prompt", name="campaign",
            field=models.ForeignKey(default=1, on_delete=django.db.models.deletion.PROTECT, related_name="prompts", to="feedback_app.campaign"),
        ),
        migrations.AddField(
            model_name="importbatch", name="campaign",
            field=models.ForeignKey(default=1, on_delete=django.db.models.deletion.PROTECT, related_name="import_batches", to="feedback_app.campaign"),
        ),
    ]
