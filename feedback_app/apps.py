"""The feedback studio's Django app."""

from django.apps import AppConfig
from django.conf import settings

# Fields whose saves leave what an API token proves unchanged (a token's or a login's time, a rater's reading of guidelines
# and their qualification, which the labeling services read afresh): saving only these announces nothing.
_NOT_CREDENTIALS = frozenset({"last_login", "last_used_at", "guidelines_seen", "qualification", "qualification_at"})


class FeedbackAppConfig(AppConfig):
    name = "feedback_app"
    verbose_name = "Feedback studio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_delete, post_save

        from feedback_app.file_modes import on_connection_created

        connection_created.connect(on_connection_created, dispatch_uid="feedback_app.file_modes")
        user_logged_out.connect(_session_ended, dispatch_uid="feedback_app.session_ended")
        post_delete.connect(_label_deleted, sender="feedback_app.PreferenceLabel", dispatch_uid="feedback_app.label_deleted")
        for model in (settings.AUTH_USER_MODEL, "feedback_app.Profile", "feedback_app.ApiToken", "feedback_app.CampaignMember"):
            post_save.connect(_credential_saved, sender=model, dispatch_uid=f"feedback_app.credential_saved.{model}")
            post_delete.connect(_credential_deleted, sender=model, dispatch_uid=f"feedback_app.credential_deleted.{model}")


def _session_ended(sender, request, user, **kwargs) -> None:
    """Close the websockets of a session that logged out (they must stop receiving pushes)."""
    from feedback_app import events

    if user is not None and request.session.session_key:
        events.user_access_changed(user_id=user.pk, session_key=request.session.session_key)


def _label_deleted(sender, instance, **kwargs) -> None:
    """A label was deleted (by an admin, or with its comparison or prompt): its closed hour's count is read again, and the quality
    tallies and the training data kept beside them are rebuilt when they hold its comparison. A rater's undo is not."""
    from feedback_app.services.label_tally import label_hour_reopen
    from feedback_app.services.quality_tally import quality_tally_reopen

    if getattr(instance, "withdrawn", False):
        return  # an undo took it out of the counts and tallies itself (services.labeling.label_undo_last)
    label_hour_reopen(created_at=instance.created_at)
    quality_tally_reopen(comparison_id=instance.comparison_id, label_created_at=instance.created_at)


def _credential_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    """A user, profile, membership or token was saved: web processes forget the API tokens they keep, unless only times
    were written, or the row is a new token or user (no process can have checked a token of theirs yet)."""
    from django.contrib.auth import get_user_model

    from feedback_app import events
    from feedback_app.models import ApiToken

    if (created and sender in (ApiToken, get_user_model())) or (update_fields is not None and set(update_fields) <= _NOT_CREDENTIALS):
        return
    events.api_credentials_changed()


def _credential_deleted(sender, instance, **kwargs) -> None:
    """A user, profile, membership or token was deleted (by an admin, or with the user): web processes forget their tokens."""
    from feedback_app import events

    events.api_credentials_changed()
