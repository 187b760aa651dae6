"""The feedback studio's Django app."""

from django.apps import AppConfig


class FeedbackAppConfig(AppConfig):
    name = "feedback_app"
    verbose_name = "Feedback studio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.backends.signals import connection_created

        from feedback_app.file_modes import on_connection_created

        connection_created.connect(on_connection_created, dispatch_uid="feedback_app.file_modes")
        user_logged_out.connect(_session_ended, dispatch_uid="feedback_app.session_ended")


def _session_ended(sender, request, user, **kwargs) -> None:
    """Close the websockets of a session that logged out (they must stop receiving pushes)."""
    from feedback_app import events

    if user is not None and request.session.session_key:
        events.user_access_changed(user_id=user.pk, session_key=request.session.session_key)
