"""The judges' admin: named, versioned judges; a remote one enabled only by an action that shows where the text goes."""

from __future__ import annotations

from django.contrib import admin, messages

from feedback_app.models import Judge, Verdict
from feedback_app.models.judges import REMOTE_WARNING
from feedback_app.selectors.judges import judge_trust
from feedback_app.services.judge_backfill import judge_backfill_request
from feedback_app.services.judges import JudgeUnavailable, judge_remote_enable


@admin.action(description="Enable the selected remote judges — this sends prompts and replies off this machine, to JUDGE_URL")
def enable_remote_judges(modeladmin, request, queryset):
    remote = [judge for judge in queryset if judge.kind == Judge.Kind.REMOTE]
    for judge in remote:
        judge_remote_enable(judge=judge, user=request.user)
    modeladmin.message_user(request, f"Enabled {len(remote)} remote judge(s). {REMOTE_WARNING}", messages.WARNING)


@admin.action(description="Back-fill verdicts on labelled comparisons (measures the judge; on the judge queue)")
def backfill_judges(modeladmin, request, queryset):
    for judge in queryset:
        try:
            judge_backfill_request(judge=judge)
            modeladmin.message_user(request, f"Queued a back-fill of {judge.name}.", messages.SUCCESS)
        except JudgeUnavailable as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)


@admin.register(Judge)
class JudgeAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "version", "enabled", "routing", "confidence_threshold", "trust"]
    list_filter = ["kind", "enabled"]
    actions = [enable_remote_judges, backfill_judges]
    readonly_fields = ["off_machine_warning", "remote_enabled_by", "remote_enabled_at", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # A judge starts disabled; a remote one is enabled only by the action above, which says where its text goes.
        locked = obj is None or (obj.kind == Judge.Kind.REMOTE and not obj.enabled)
        return [*self.readonly_fields, *(["enabled"] if locked else [])]

    @admin.display(description="Off-machine warning")
    def off_machine_warning(self, judge):
        return REMOTE_WARNING if judge.kind == Judge.Kind.REMOTE else "—"

    @admin.display(description="Audit (default campaign; each campaign's on its quality page)")
    def trust(self, judge):
        return judge_trust(judge=judge).reason


@admin.register(Verdict)
class VerdictAdmin(admin.ModelAdmin):
    list_display = ["id", "judge_version", "comparison", "choice", "confidence", "abstained", "reason", "backfill", "created_at"]
    list_filter = ["judge_version__judge", "abstained", "reason", "backfill"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
