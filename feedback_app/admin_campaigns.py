"""The campaigns' admin: each campaign with its members; made and changed through the campaign services, so it is audited."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.text import slugify

from feedback_app.models import Campaign, CampaignMember, Role
from feedback_app.services.campaigns import (
    SETTINGS_FIELDS,
    CampaignError,
    campaign_create,
    campaign_settings_update,
    member_remove,
    member_set,
    settings_checked,
)


class CampaignForm(forms.ModelForm):
    """Refuses what the campaign services would refuse, as errors of the form rather than a failed save."""

    class Meta:
        model = Campaign
        fields = "__all__"

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if slugify(slug) != slug:
            raise forms.ValidationError("lower-case letters, digits, '-' or '_' only")
        return slug

    def clean(self):
        data = super().clean()
        try:
            settings_checked({name: data[name] for name in SETTINGS_FIELDS if data.get(name) is not None})
        except CampaignError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


class CampaignMemberInline(admin.TabularInline):
    model = CampaignMember
    extra = 1
    fields = ["user", "role", "qualification", "guidelines_seen", "created_at"]
    readonly_fields = ["qualification", "guidelines_seen", "created_at"]
    autocomplete_fields = ["user"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "state", "parent", "n_members", "label_target", "created_at"]
    list_filter = ["state"]
    search_fields = ["slug", "name"]
    form = CampaignForm
    inlines = [CampaignMemberInline]
    fields = ["slug", "name", "parent", "state", *sorted(SETTINGS_FIELDS - {"state"}), "guidelines_version", "updated_by", "updated_at", "created_at"]
    readonly_fields = ["guidelines_version", "updated_by", "updated_at", "created_at"]

    @admin.display(description="members")
    def n_members(self, campaign):
        return campaign.members.count()

    def get_readonly_fields(self, request, obj=None):
        fixed = ["slug", "parent"] if obj is not None else []  # a slug is in URLs and exports; a parent is history
        return [*fixed, *self.readonly_fields]

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser  # studio admins only: a campaign's own admins change its rules on its quality page

    has_add_permission = has_delete_permission = lambda self, request, obj=None: request.user.is_superuser

    def save_model(self, request, obj, form, change):
        rules = {name: form.cleaned_data[name] for name in SETTINGS_FIELDS if name in form.cleaned_data}
        if not change:  # the form checked the slug, the name and the rules; a slug taken meanwhile is a unique-key error
            obj.pk = campaign_create(slug=obj.slug, name=obj.name, parent=obj.parent, actor=request.user).pk
        changed = {name: value for name, value in rules.items() if name in form.changed_data}  # a parent's rules stand unless changed
        if changed:
            campaign_settings_update(campaign=obj, user=request.user, **changed)
        if change and "name" in form.changed_data:
            Campaign.objects.filter(pk=obj.pk).update(name=obj.name)
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        members = formset.save(commit=False)
        for member in formset.deleted_objects:
            member_remove(campaign=form.instance, user=member.user, actor=request.user)
        for member in members:
            member_set(campaign=form.instance, user=member.user, role=Role(member.role), actor=request.user)
        formset.save_m2m()
