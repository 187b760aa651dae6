"""The feedback studio's Django side: labels in, datasets and training runs out."""

from feedback_app.celery import app as celery_app

__all__ = ["celery_app"]
