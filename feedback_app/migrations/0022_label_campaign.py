# A label keeps its comparison's campaign, so a campaign's labels by time are one index range (label_campaign_created);
# the column is filled here and made required, and indexed, in 0023 (PostgreSQL alters no table with this transaction's updates pending).

import django.db.models.deletion
from django.db import migrations, models


def campaigns_copy(apps, schema_editor):
    """Fill every existing label's campaign from its comparison's prompt, in one statement."""
    label, comparison, prompt = (apps.get_model("feedback_app", name)._meta.db_table for name in ("PreferenceLabel", "Comparison", "Prompt"))
    if schema_editor.connection.vendor == "postgresql":
        sql = (f"UPDATE {label} l SET campaign_id = p.campaign_id FROM {comparison} c INNER JOIN {prompt} p ON p.id = c.prompt_id "
               f"WHERE c.id = l.comparison_id")
    else:
        sql = (f"UPDATE {label} SET campaign_id = (SELECT p.campaign_id FROM {comparison} c INNER JOIN {prompt} p ON p.id = c.prompt_id "
               f"WHERE c.id = {label}.comparison_id)")
    schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('feedback_app', '0021_assignment_fk_indexes_covered'),
    ]

    operations = [
        migrations.AddField(
            model_name='preferencelabel',
            name='campaign',
            field=models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+',
                                    to='feedback_app.campaign'),
        ),
        migrations.RunPython(campaigns_copy, migrations.RunPython.noop),
    ]
