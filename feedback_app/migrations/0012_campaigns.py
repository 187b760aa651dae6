"""Campaigns (1 of 3, schema): the studio's one settings row becomes a campaign table; members get their table.

Migration 0013 makes the default campaign and moves each rater's state onto a membership; 0014 puts every prompt
and import batch into a campaign.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
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
    ]
