"""Websocket URLs."""

from django.urls import path

from feedback_app import consumers

websocket_urlpatterns = [
    path("ws/dashboard/", consumers.DashboardConsumer.as_asgi()),
    path("ws/c/<slug:campaign_slug>/dashboard/", consumers.DashboardConsumer.as_asgi()),
    path("ws/rater/", consumers.RaterConsumer.as_asgi()),
    path("ws/c/<slug:campaign_slug>/rater/", consumers.RaterConsumer.as_asgi()),
]
