"""Rename the reward model's verdict on a comparison: rm_p_a -> rm_prob_a_wins, rm_p_a_version -> rm_prob_version."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("feedback_app", "0005_import_jobs")]

    operations = [
        migrations.RenameField(model_name="comparison", old_name="rm_p_a", new_name="rm_prob_a_wins"),
        migrations.RenameField(model_name="comparison", old_name="rm_p_a_version", new_name="rm_prob_version"),
    ]
