"""Websocket URLs."""

websocket_urlpatterns: list = []
