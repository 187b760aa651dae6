"""The API token admin: tokens listed by prefix, issued with the key shown once, revoked at once."""

from __future__ import annotations

from django.contrib import admin, messages

from feedback_app.models import ApiToken
from feedback_app.services.accounts import api_token_issue, api_token_revoke


@admin.action(description="Revoke the selected tokens")
def revoke_tokens(modeladmin, request, queryset):
    revoked = sum(api_token_revoke(token=token, actor=request.user) for token in queryset.select_related("user"))
    modeladmin.message_user(request, f"Revoked {revoked} token(s); they stop working from the next request.", messages.SUCCESS)


@admin.action(description="Issue a new API token to each selected user (keys shown once)")
def issue_api_tokens(modeladmin, request, queryset):
    for user in queryset:
        _, key = api_token_issue(user=user, actor=request.user)
        _show_key_once(modeladmin, request, user, key)


def _show_key_once(modeladmin, request, user, key: str) -> None:
    modeladmin.message_user(
        request, f"New API token for {user}: {key} — copy it now; it is stored only hashed and not shown again.", messages.WARNING
    )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["prefix", "user__username"]
    list_select_related = ["user"]
    actions = [revoke_tokens]

    def get_fields(self, request, obj=None):
        return ["user"] if obj is None else ["user", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        """Issue a new token through the service and show its key, once."""
        if change:
            return
        issued, key = api_token_issue(user=obj.user, actor=request.user)
        obj.pk, obj.digest, obj.prefix, obj.created_at = issued.pk, issued.digest, issued.prefix, issued.created_at
        obj._state.adding = False
        _show_key_once(self, request, obj.user, key)
