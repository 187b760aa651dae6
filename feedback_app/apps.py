from django.apps import AppConfig


class FeedbackAppConfig(AppConfig):
    name = "feedback_app"
    verbose_name = "Feedback studio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.backends.signals import connection_created

        from feedback_app.file_modes import on_connection_created

        connection_created.connect(on_connection_created, dispatch_uid="feedback_app.file_modes")
