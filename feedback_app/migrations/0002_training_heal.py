"""Training runs record when their message was sent, and at most one run of a kind waits."""

from django.db import migrations, models
from django.db.models import Q


def fail_duplicate_queued_runs(apps, schema_editor):
    """Keep the oldest queued run of each kind; fail the others, which it stands for."""
    TrainingRun = apps.get_model("feedback_app", "TrainingRun")
    kept = {}
    for run in TrainingRun.objects.filter(status="queued").order_by("id"):
        if run.kind not in kept:
            kept[run.kind] = run.pk
            continue
        TrainingRun.objects.filter(pk=run.pk).update(
            status="failed", error=f"a duplicate of queued run {kept[run.kind]}: one run of a kind waits at a time")


class Migration(migrations.Migration):
    dependencies = [("feedback_app", "0001_initial")]

    operations = [
        migrations.AddField(model_name="trainingrun", name="enqueued_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="trainingrun", name="enqueue_count", field=models.PositiveIntegerField(default=0)),
        migrations.AddField(model_name="trainingrun", name="enqueue_failed_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.RemoveConstraint(model_name="trainingrun", name="one_pending_auto_run"),
        migrations.AddConstraint(
            model_name="trainingrun",
            constraint=models.UniqueConstraint(condition=Q(("status__in", ["queued", "running"]), ("trigger", "auto")),
                                               fields=("trigger", "kind"), name="one_pending_auto_run_per_kind"),
        ),
        migrations.RunPython(fail_duplicate_queued_runs, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="trainingrun",
            constraint=models.UniqueConstraint(condition=Q(status="queued"), fields=("kind",), name="one_queued_run_per_kind"),
        ),
    ]
