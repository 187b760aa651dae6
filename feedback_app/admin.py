"""Django admin: every model, with search and filters, plus import and export pages."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from feedback_app.admin_judges import enable_remote_judges  # noqa: F401  (registers the judges' admin)
from feedback_app.admin_tokens import issue_api_tokens  # and registers the API token admin
from feedback_app.admin_campaigns import CampaignAdmin  # noqa: F401  (registers the campaigns' admin)
from feedback_app.admin_training import TrainingRunAdmin  # noqa: F401  (registers the versions' and runs' admin)
from feedback_app.selectors.campaigns import campaign_default, campaign_role
from feedback_app.models import (
    Campaign,
    Assignment,
    AuditEntry,
    Comparison,
    ImportBatch,
    ImportJob,
    PreferenceLabel,
    Profile,
    Prompt,
    Response,
    Role,
    Tag,
)
from feedback_app.selectors.accounts import user_has_role, user_role_stored
from feedback_app.selectors.imports import import_job_get
from feedback_app.selectors.exports import CONTENT_TYPES, FORMATS, LABEL_SOURCES, ExportFilters, export_filename, export_filter_problems
from feedback_app.services.accounts import role_group_sync
from feedback_app.services.exports import export_stream
from feedback_app.services.import_columns import ColumnMappingError, column_mapping_parse
from feedback_app.services.import_jobs import ImportFileGone, import_job_create, import_job_retry
from feedback_app.views.streaming import streaming_download

User = get_user_model()
admin.site.site_header = "Feedback studio administration"
admin.site.site_title = "Feedback studio"


class ProfileInline(admin.StackedInline):
    model = Profile
    can_delete = False
    readonly_fields = ["pseudonym"]


admin.site.unregister(User)


@admin.register(User)
class StudioUserAdmin(UserAdmin):
    inlines = [ProfileInline]
    actions = [issue_api_tokens]
    list_display = ["username", "email", "role", "is_active", "last_login"]
    list_filter = ["profile__role", "is_active", "is_staff"]

    @admin.display(description="role", ordering="profile__role")
    def role(self, user):
        return getattr(getattr(user, "profile", None), "role", "superuser" if user.is_superuser else "")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        role = user_role_stored(user=form.instance)
        if role is not None:
            role_group_sync(user=form.instance, role=role)


class ImportForm(forms.Form):
    kind = forms.ChoiceField(choices=[("prompts", "Prompts (with optional responses)"), ("preferences", "Labelled preferences (TRL or HH)")])
    file = forms.FileField(required=False, help_text="JSON Lines (.jsonl) or CSV (.csv), UTF-8; gzip-compressed too (.gz).")
    again = forms.IntegerField(required=False, widget=forms.HiddenInput)  # the failed job whose kept file is imported without a file
    required_labels = forms.IntegerField(min_value=1, required=False, help_text="Labels each new comparison needs (prompts only).")
    allow_duplicate = forms.BooleanField(required=False, help_text="Import a file whose content was imported before.")
    skip_invalid = forms.BooleanField(required=False, help_text="Import the valid rows and list every skipped one with its reason.")
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.all(), required=False, empty_label="Default campaign",
                                      help_text="The campaign the rows go into.")
    columns = forms.CharField(
        required=False, label="Column mapping", max_length=2000, widget=forms.TextInput(attrs={"size": 60, "placeholder": "prompt=instruction; tags=intent,category"}),
        help_text="For a file of another shape: which columns (CSV) or keys (JSONL) feed which field, entries separated by ';'. "
                  "prompt, chosen, rejected, margin and context take one column; responses, tags and metadata several. "
                  "Only the columns named are read; the job lists the others.")

    def clean(self):
        data = super().clean()
        if data.get("kind") and data.get("columns"):
            try:
                column_mapping_parse(data["columns"], kind=data["kind"])
            except ColumnMappingError as exc:
                self.add_error("columns", str(exc))
        if not data.get("file"):
            data["kept_job"] = _import_job_kept(data.get("again"))
            if data["kept_job"] is None:
                self.add_error("file", f"the file of import job {data['again']} is no longer kept: choose it again" if data.get("again")
                               else self.fields["file"].error_messages["required"])
        return data


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="trl")
    date_from = forms.DateTimeField(required=False, help_text="YYYY-MM-DD [HH:MM]")
    date_to = forms.DateTimeField(required=False)
    rater = forms.CharField(required=False, help_text="Username or pseudonym.")
    tags = forms.CharField(required=False, help_text="Comma-separated.")
    exclude_flagged = forms.BooleanField(required=False)
    label_source = forms.ChoiceField(choices=[(s, s) for s in LABEL_SOURCES], initial="all", required=False, help_text="human, ai (judges) or all.")
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.all(), required=False, empty_label="Default campaign",
                                      help_text="An export holds one campaign's labels.")

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] >= data["date_to"]:
            self.add_error("date_to", "must be after the start date")
        return data


def _import_job(job_id: int | str | None):
    """The import job ``job_id`` (a number, or its digits as a query or a form gives them); None for anything else."""
    if isinstance(job_id, str):
        job_id = int(job_id) if job_id.isascii() and job_id.isdigit() else None
    return import_job_get(job_id=job_id) if job_id else None


def _import_again_initial(job_id: str | None) -> dict:
    """The import form's choices of an earlier job (``?again=ID``, the "try again" link of a job page), and that job as
    ``again`` where its file is kept; none for no such job."""
    job = _import_job(job_id)
    if job is None:
        return {}
    options = job.options
    return {"kind": job.kind, "required_labels": options.get("required_labels"), "allow_duplicate": options.get("allow_duplicate"),
            "skip_invalid": options.get("skip_invalid"), "campaign": options.get("campaign_id"), "columns": options.get("columns") or "",
            "again": job.pk if job.file_kept_until else None}


def _import_job_kept(job_id: int | str | None):
    """The failed import job ``job_id`` if its file is still kept, else None."""
    job = _import_job(job_id)
    return job if job is not None and job.file_kept_until else None


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "short_text", "campaign", "source", "n_responses", "created_at"]
    list_filter = ["campaign", "source", "tags", "created_at"]
    search_fields = ["text", "metadata"]
    filter_horizontal = ["tags"]
    readonly_fields = ["import_batch", "created_at"]
    change_list_template = "admin/feedback_app/prompt/change_list.html"

    @admin.display(description="text")
    def short_text(self, prompt):
        return str(prompt)

    @admin.display(description="responses")
    def n_responses(self, prompt):
        return prompt.responses.count()

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_view), name="feedback_app_prompt_import"),
                path("import/<int:job_id>/", self.admin_site.admin_view(self.import_job_view), name="feedback_app_prompt_import_job"),
                *super().get_urls()]

    def import_view(self, request):
        """Keep the upload and queue its import; the job page follows it."""
        if not user_has_role(user=request.user, roles=(Role.ADMIN,)):
            raise PermissionDenied("only admins import")
        form = ImportForm(request.POST or None, request.FILES or None, initial=_import_again_initial(request.GET.get("again")))
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            choices = {"kind": data["kind"], "user": request.user, "required_labels": data["required_labels"],
                       "allow_duplicate": data["allow_duplicate"], "skip_invalid": data["skip_invalid"],
                       "campaign_id": (data["campaign"] or campaign_default()).pk, "columns": data["columns"]}
            try:
                job = (import_job_create(data=data["file"].read(), filename=data["file"].name, **choices) if data["file"]
                       else import_job_retry(job=data["kept_job"], **choices))
            except ImportFileGone as exc:  # removed since the form was checked
                form.add_error("file", str(exc))
            else:
                return redirect("admin:feedback_app_prompt_import_job", job.pk)
        kept = _import_job_kept(form["again"].value())
        context = {**self.admin_site.each_context(request), "title": "Import prompts or preferences", "form": form, "opts": self.model._meta,
                   "kept_job": kept}
        return TemplateResponse(request, "admin/feedback_app/import.html", context)

    def import_job_view(self, request, job_id: int):
        """Show how far an import job got, and its errors or result; the page reloads itself until it ends."""
        if not user_has_role(user=request.user, roles=(Role.ADMIN,)):
            raise PermissionDenied("only admins import")
        job = import_job_get(job_id=job_id)
        if job is None:
            raise Http404(f"no import job {job_id}")
        context = {**self.admin_site.each_context(request), "title": f"Import of {job.filename}", "job": job, "opts": self.model._meta}
        return TemplateResponse(request, "admin/feedback_app/import_job.html", context)


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt_id", "__str__", "policy_version", "created_at"]
    list_filter = ["policy_version"]
    search_fields = ["text"]
    raw_id_fields = ["prompt"]


class AssignmentInline(admin.TabularInline):
    model = Assignment
    extra = 0
    readonly_fields = ["rater", "a_on_left", "status", "leased_at", "lease_expires_at", "finished_at"]
    can_delete = False


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "status", "kind", "label_count", "required_labels", "is_gold", "selection_strategy", "created_at"]
    list_filter = ["status", "kind", "is_gold", "selection_strategy", "policy_version", "reward_model_version"]
    search_fields = ["prompt__text", "response_a__text", "response_b__text"]
    raw_id_fields = ["prompt", "response_a", "response_b", "import_batch"]
    readonly_fields = ["label_count", "created_at", "completed_at"]
    inlines = [AssignmentInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison_id", "rater", "status", "a_on_left", "leased_at", "lease_expires_at"]
    list_filter = ["status", "leased_at"]
    search_fields = ["rater__username", "comparison__prompt__text"]
    raw_id_fields = ["comparison", "rater"]


@admin.register(PreferenceLabel)
class PreferenceLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison_id", "rater", "judge_version", "winner", "strength", "flag_list", "time_on_task_ms", "created_at"]
    list_filter = ["winner", "strength", "created_at", "import_batch", "judge_version__judge"]
    search_fields = ["rater__username", "rater__profile__pseudonym", "rationale", "comparison__prompt__text"]
    raw_id_fields = ["comparison", "rater", "assignment", "import_batch", "judge_version"]
    readonly_fields = ["created_at"]
    change_list_template = "admin/feedback_app/preferencelabel/change_list.html"

    @admin.display(description="flags")
    def flag_list(self, label):
        return ", ".join(label.flags)

    def get_urls(self):
        return [path("export/", self.admin_site.admin_view(self.export_view), name="feedback_app_preferencelabel_export"), *super().get_urls()]

    def export_view(self, request):
        if not user_has_role(user=request.user, roles=(Role.RESEARCHER, Role.ADMIN)):
            raise PermissionDenied("only researchers and admins export")
        form = ExportForm(request.GET or None)
        if request.GET and form.is_valid():
            data = form.cleaned_data
            campaign = data["campaign"] or campaign_default()
            if campaign_role(user=request.user, campaign=campaign) not in (Role.RESEARCHER, Role.ADMIN):
                raise PermissionDenied(f"you are not a researcher of campaign {campaign.slug}")
            filters = ExportFilters.from_query(date_from=data["date_from"], date_to=data["date_to"], rater=data["rater"],
                                               tags=data["tags"], exclude_flagged=data["exclude_flagged"], label_source=data["label_source"],
                                               campaign_id=campaign.pk)
            problems = export_filter_problems(filters=filters)
            for name, message in problems.items():
                form.add_error(name, message)
            if not problems:
                fmt = data["format"]
                filename = export_filename(fmt=fmt, now=timezone.now())
                return streaming_download(request, export_stream(fmt=fmt, filters=filters), content_type=CONTENT_TYPES[fmt], filename=filename)
        context = {**self.admin_site.each_context(request), "title": "Export preferences", "form": form, "opts": self.model._meta}
        return TemplateResponse(request, "admin/feedback_app/export.html", context)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "filename", "created_by", "created_at", "counts"]
    list_filter = ["kind", "created_at"]
    search_fields = ["filename", "sha256"]
    readonly_fields = ["kind", "filename", "sha256", "created_by", "created_at", "counts", "published"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "filename", "status", "progress", "created_by", "created_at", "finished_at"]
    list_filter = ["kind", "status", "created_at"]
    search_fields = ["filename"]
    readonly_fields = ["kind", "filename", "options", "status", "progress", "errors", "error_total", "skipped", "left_out", "import_batch",
                       "created_by", "created_at", "started_at", "finished_at"]

    def has_add_permission(self, request):
        return False  # jobs come from the import page


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "target"]
    list_filter = ["action", "created_at"]
    search_fields = ["action", "target", "actor__username"]
    readonly_fields = ["actor", "action", "target", "details", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
