"""PolicyVersion.serving_mode (sample or rerank, the two policy tiers) and Comparison.policy_mode (the mode an arena reply was served in)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("feedback_app", "0007_response_truncated"),
    ]

    operations = [
        migrations.AddField(
            model_name="policyversion",
            name="serving_mode",
            field=models.CharField(
                choices=[("sample", "Sample (one reply)"), ("rerank", "Rerank (best of n by the active reward model)")],
                default="sample", max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="comparison",
            name="policy_mode",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
    ]
