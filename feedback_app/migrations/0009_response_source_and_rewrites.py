"""Response.source (imported, policy, human_edit) and .edited_from, and PreferenceLabel.rewrite: a rater's rewrite as a response.

Existing responses get their source from their policy version; a label that already holds an
edited text (the API took one before the label page did) gets its rewrite response, started from
the chosen reply (a or b) or from none (tie, both bad: the start was not recorded). An edited text
that is blank or the same as one of the two replies is not a rewrite and gets none.
"""

import django.db.models.deletion
from django.db import migrations, models


def _normal(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def sources_derive(apps, schema_editor):
    Response = apps.get_model("feedback_app", "Response")
    Response.objects.filter(policy_version__isnull=False).update(source="policy")


def rewrites_backfill(apps, schema_editor):
    Response = apps.get_model("feedback_app", "Response")
    PreferenceLabel = apps.get_model("feedback_app", "PreferenceLabel")
    labels = (PreferenceLabel.objects.exclude(edited_text="").filter(rewrite__isnull=True)
              .select_related("comparison__response_a", "comparison__response_b"))
    for label in labels.iterator(chunk_size=500):
        comparison = label.comparison
        text = _normal(label.edited_text)
        if not text or text in (_normal(comparison.response_a.text), _normal(comparison.response_b.text)):
            continue
        start = {"a": comparison.response_a, "b": comparison.response_b}.get(label.winner)
        label.rewrite = Response.objects.create(prompt_id=comparison.prompt_id, text=text, source="human_edit", edited_from=start)
        label.save(update_fields=["rewrite"])


def rewrites_remove(apps, schema_editor):
    Response = apps.get_model("feedback_app", "Response")
    PreferenceLabel = apps.get_model("feedback_app", "PreferenceLabel")
    PreferenceLabel.objects.filter(rewrite__isnull=False).update(rewrite=None)
    Response.objects.filter(source="human_edit").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("feedback_app", "0008_serving_mode"),
    ]

    operations = [
        migrations.AddField(
            model_name="response",
            name="source",
            field=models.CharField(
                choices=[("imported", "Imported"), ("policy", "Policy"), ("human_edit", "Rater's rewrite")],
                db_index=True, default="imported", max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="response",
            name="edited_from",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="rewrites", to="feedback_app.response"),
        ),
        migrations.AddField(
            model_name="preferencelabel",
            name="rewrite",
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="rewrite_label", to="feedback_app.response"),
        ),
        migrations.RunPython(sources_derive, migrations.RunPython.noop),
        migrations.RunPython(rewrites_backfill, rewrites_remove),
    ]
