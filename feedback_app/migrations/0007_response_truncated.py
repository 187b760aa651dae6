"""Response.truncated: a generated reply that hit the token budget before it ended."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("feedback_app", "0006_comparison_rm_prob_names"),
    ]

    operations = [
        migrations.AddField(
            model_name="response",
            name="truncated",
            field=models.BooleanField(default=False),
        ),
    ]
