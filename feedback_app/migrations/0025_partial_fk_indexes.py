# Six nullable foreign keys, NULL in most rows, get partial indexes (over the rows where they are set) in place of full ones,
# so a write of a row where they are NULL costs no entry there: the comparison's update that completes it (never HOT) and a
# rater's label insert wrote 4 and 2 such entries. The old indexes are dropped by name, as the state's AlterField would drop
# them, but without SQLite's rebuild of each table (six copies of every comparison and label).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (model, foreign key, the name of its partial index)
FIELDS = [("comparison", "import_batch", "comparison_import_batch"), ("comparison", "policy_version", "comparison_policy"),
          ("comparison", "reviewed_by", "comparison_reviewed_by"), ("comparison", "reward_model_version", "comparison_reward_model"),
          ("preferencelabel", "import_batch", "label_import_batch"), ("preferencelabel", "judge_version", "label_judge_version")]


def _single_column_indexes(schema_editor, table: str, column: str) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return sorted(name for name, info in constraints.items()
                  if info["index"] and not info["unique"] and not info["primary_key"] and info["columns"] == [column])


def drop_full_indexes(apps, schema_editor) -> None:
    for model_name, field_name, _ in FIELDS:
        model = apps.get_model("feedback_app", model_name)
        column = model._meta.get_field(field_name).column
        for name in _single_column_indexes(schema_editor, model._meta.db_table, column):
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_full_indexes(apps, schema_editor) -> None:
    for model_name, field_name, _ in FIELDS:
        model = apps.get_model("feedback_app", model_name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field(field_name)]))


class Migration(migrations.Migration):

    dependencies = [
        ('feedback_app', '0024_reward_scoring'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='comparison',
                    name='import_batch',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='comparisons', to='feedback_app.importbatch'),
                ),
                migrations.AlterField(
                    model_name='comparison',
                    name='policy_version',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='feedback_app.policyversion'),
                ),
                migrations.AlterField(
                    model_name='comparison',
                    name='reviewed_by',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='comparison',
                    name='reward_model_version',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='feedback_app.rewardmodelversion'),
                ),
                migrations.AlterField(
                    model_name='preferencelabel',
                    name='import_batch',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='labels', to='feedback_app.importbatch'),
                ),
                migrations.AlterField(
                    model_name='preferencelabel',
                    name='judge_version',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='labels', to='feedback_app.judgeversion'),
                ),
            ],
            database_operations=[migrations.RunPython(drop_full_indexes, create_full_indexes)],
        ),
        *(migrations.AddIndex(model_name=model_name, index=models.Index(condition=models.Q((f"{field_name}__isnull", False)),
                                                                         fields=[field_name], name=name))
          for model_name, field_name, name in FIELDS),
    ]
