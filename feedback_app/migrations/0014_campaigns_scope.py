"""Campaigns (3 of 3, schema): every prompt and import batch belongs to a campaign (the default one, before);
profiles lose the guidelines and qualification that memberships hold now."""

import django.db.models.deletion
from django.db import migrations, models


def one_campaign_only(apps, schema_editor):
    Campaign = apps.get_model("feedback_app", "Campaign")
    others = list(Campaign.objects.exclude(pk=1).values_list("slug", flat=True))
    if others:
        raise RuntimeError(f"cannot go back before campaigns while other campaigns exist ({', '.join(others)}); delete them first")


class Migration(migrations.Migration):

    dependencies = [
        ("feedback_app", "0013_campaigns_data"),
    ]

    operations = [
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
        # Going back, before anything above is undone: the tables before campaigns hold one campaign only.
        migrations.RunPython(migrations.RunPython.noop, one_campaign_only),
    ]
