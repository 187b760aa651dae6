"""The admin of the learning loop: model versions (promote, roll back, serve, prune, retrain) and training runs, per campaign."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Campaign, PolicyVersion, RewardModelVersion, TrainingRun
from feedback_app.selectors.training import version_active
from feedback_app.services.retention import model_store_prune
from feedback_app.services.serving import version_serving_mode_set
from feedback_app.services.training_runs import training_run_get_or_request
from feedback_app.services.versions import VersionPruned, version_make_active


def _retrain(kind: str, label: str):
    @admin.action(description=label)
    def action(modeladmin, request, queryset):
        """Queue a run of ``kind`` for each campaign whose versions or runs are selected."""
        for campaign_id in sorted(set(queryset.values_list("campaign_id", flat=True))):
            run, created = training_run_get_or_request(kind=kind, trigger=TrainingRun.Trigger.MANUAL, user=request.user, campaign_id=campaign_id)
            modeladmin.message_user(request, f"{'Queued' if created else 'Already queued:'} training run {run.pk} ({run.get_kind_display()}, "
                                             f"campaign {run.campaign.slug}).", messages.SUCCESS)

    action.__name__ = f"retrain_{kind}"
    return action


@admin.action(description="Make the selected version active (promote or roll back)")
def make_active(modeladmin, request, queryset):
    """Activate one version after a confirmation page, in one transaction, with an audit entry."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one version to make active.", messages.WARNING)
        return None
    version = queryset.get()
    if request.POST.get("confirmed") != "yes":
        context = {**modeladmin.admin_site.each_context(request), "title": f"Make {version.name} active?", "version": version,
                   "active": version_active(model=queryset.model, campaign_id=version.campaign_id), "opts": modeladmin.model._meta,
                   "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/feedback_app/confirm_activate.html", context)
    try:
        action = version_make_active(version=version, user=request.user, reason="admin")
    except VersionPruned as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
        return None
    modeladmin.message_user(request, f"{version.name} is now active ({action}).", messages.SUCCESS)
    return None


def _serve_in(mode: str, label: str):
    @admin.action(description=label)
    def action(modeladmin, request, queryset):
        changed = [v.name for v in queryset if version_serving_mode_set(version=v, mode=mode, user=request.user, reason="admin")]
        modeladmin.message_user(request, f"Serving in mode {mode!r} now: {', '.join(changed) or 'none changed'}.", messages.SUCCESS)

    action.__name__ = f"serve_{mode}"
    return action


@admin.action(description="Prune model store now")
def prune_model_store(modeladmin, request, queryset):
    """Apply retention to the whole store (the selection does not matter: retention decides what stays)."""
    report = model_store_prune(user=request.user)
    modeladmin.message_user(request, "Model store pruned. " + "; ".join(report.lines()), messages.SUCCESS)


class _VersionAdmin(admin.ModelAdmin):
    list_display = ["name", "campaign", "status", "parent", "accuracy", "created_at", "activated_at"]
    list_filter = ["campaign", "status", "created_at"]
    search_fields = ["name", "path"]
    readonly_fields = ["name", "campaign", "path", "parent", "metrics", "manifest", "created_at", "activated_at"]
    readonly_fields += ["pruned_at"]
    actions = [make_active]

    @admin.display(description="val. accuracy")
    def accuracy(self, version):
        value = version.metrics.get("val_accuracy")
        return f"{value:.3f}" if isinstance(value, (int, float)) else "–"

    def has_add_permission(self, request):
        return False  # versions come from training runs


@admin.register(RewardModelVersion)
class RewardModelVersionAdmin(_VersionAdmin):
    list_display = ["name", "campaign", "status", "tier", "parent", "accuracy", "baseline_accuracy", "n_pairs", "created_at", "activated_at"]
    list_filter = ["campaign", "status", "tier", "created_at"]
    actions = [make_active, _retrain("reward_fast", "Retrain now (fast tier)"), _retrain("reward_full", "Retrain now (full tier)")]
    actions += [prune_model_store]

    @admin.display(description="active's accuracy then")
    def baseline_accuracy(self, version):
        value = (version.metrics.get("baseline") or {}).get("val_accuracy")
        return f"{value:.3f}" if isinstance(value, (int, float)) else "–"

    @admin.display(description="pairs")
    def n_pairs(self, version):
        return version.data_range.get("n_pairs", "–")


@admin.register(PolicyVersion)
class PolicyVersionAdmin(_VersionAdmin):
    list_display = ["name", "campaign", "status", "serving_mode", "win_rate", "selection_strategy", "parent", "created_at", "activated_at"]
    readonly_fields = [*_VersionAdmin.readonly_fields, "serving_mode"]  # changed by the actions, which write the audit entry
    actions = [make_active, _retrain("policy_dpo", "Improve the policy now (DPO)"), prune_model_store]
    actions += [_serve_in("rerank", "Serve by rerank (best of n by the active reward model)"), _serve_in("sample", "Serve by sampling one reply")]

    @admin.display(description="RM win rate vs parent")
    def win_rate(self, version):
        value = version.metrics.get("win_rate_vs_parent")
        return f"{value:.2f}" if isinstance(value, (int, float)) else "–"


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "campaign", "status", "trigger", "requested_by", "progress_summary", "produced", "created_at", "finished_at"]
    list_filter = ["campaign", "kind", "status", "trigger", "created_at"]
    search_fields = ["error", "worker"]
    readonly_fields = ["campaign", "status", "progress", "metrics", "reward_model_version", "policy_version", "error", "worker",
                       "created_at", "started_at", "heartbeat_at", "finished_at", "requested_by"]
    fields = ["kind", "trigger", *readonly_fields]
    change_list_template = "admin/feedback_app/trainingrun/change_list.html"
    actions = [_retrain("reward_fast", "Retrain reward model now (fast)")]

    @admin.display(description="progress")
    def progress_summary(self, run):
        p = run.progress or {}
        if not p:
            return "–"
        parts = [p.get("phase", ""), f"{p.get('step')}/{p.get('total_steps')}" if p.get("total_steps") else "",
                 f"loss {p['loss']:.3f}" if isinstance(p.get("loss"), (int, float)) else "",
                 f"acc {p['accuracy']:.3f}" if isinstance(p.get("accuracy"), (int, float)) else ""]
        return " · ".join(x for x in parts if x)

    @admin.display(description="version")
    def produced(self, run):
        version = run.reward_model_version or run.policy_version
        return f"{version.name} ({version.status})" if version else "–"

    def add_view(self, request, form_url="", extra_context=None):
        self.message_user(request, "Queue a run with the buttons above the list.", messages.INFO)
        return redirect("admin:feedback_app_trainingrun_changelist")

    def get_urls(self):
        return [path("request/<str:kind>/", self.admin_site.admin_view(self.request_view), name="feedback_app_trainingrun_request"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        """The list, with the buttons above it queueing a run for the campaign chosen beside them."""
        return super().changelist_view(request, {"campaigns": Campaign.objects.order_by("id"), **(extra_context or {})})

    def request_view(self, request, kind: str):
        """Queue a run from the buttons above the list (POST only)."""
        if request.method != "POST" or not self.has_add_permission(request):
            raise PermissionDenied("queue runs with the buttons on the training runs page")
        if kind not in TrainingRun.Kind.values:
            raise PermissionDenied(f"unknown kind {kind!r}")
        campaign = Campaign.objects.filter(pk=request.POST.get("campaign") or DEFAULT_CAMPAIGN_ID).first()
        if campaign is None:
            raise PermissionDenied(f"no campaign {request.POST.get('campaign')!r}")
        run, created = training_run_get_or_request(kind=kind, trigger=TrainingRun.Trigger.MANUAL, user=request.user, campaign_id=campaign.pk)
        self.message_user(request, f"{'Queued' if created else 'Already queued:'} training run {run.pk} ({run.get_kind_display()}).", messages.SUCCESS)
        return redirect("admin:feedback_app_trainingrun_changelist")
