"""The feedback studio's Django app."""

from django.apps import AppConfig


class FeedbackAppConfig(AppConfig):
    name = "feedback_app"
    verbose_name = "Feedback studio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_delete

        from feedback_app.file_modes import on_connection_created

        connection_created.connect(on_connection_created, dispatch_uid="feedback_app.file_modes")
        user_logged_out.connect(_session_ended, dispatch_uid="feedback_app.session_ended")
        post_delete.connect(_label_deleted, sender="feedback_app.PreferenceLabel", dispatch_uid="feedback_app.label_deleted")


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
