"""URLs of the site, the admin and the API."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter

from feedback_app.views import dashboard, health, home, labeling
from feedback_app.views.params import IdConverter

register_converter(IdConverter, "id")  # before any route here or in api.urls uses <id:...>

urlpatterns = [
    path("api/", include("feedback_app.api.urls")),  # first: a rater's every label resolves here, past no other pattern
    path("", home.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("label/", labeling.label_entry, name="label"),
    path("label/<id:comparison_id>/", labeling.label_submit, name="label-submit"),
    path("label/<id:comparison_id>/skip/", labeling.label_skip, name="label-skip"),
    path("label/undo/", labeling.label_undo, name="label-undo"),
    path("label/guidelines/", labeling.guidelines_seen, name="label-guidelines-seen"),
    path("campaigns/", labeling.campaigns_page, name="campaigns"),
    # A campaign's own pages: the same views, scoped by the slug (the unscoped ones mean the default campaign).
    path("c/<slug:campaign_slug>/label/", labeling.label_page, name="campaign-label"),
    path("c/<slug:campaign_slug>/label/<id:comparison_id>/", labeling.label_submit, name="campaign-label-submit"),
    path("c/<slug:campaign_slug>/label/<id:comparison_id>/skip/", labeling.label_skip, name="campaign-label-skip"),
    path("c/<slug:campaign_slug>/label/undo/", labeling.label_undo, name="campaign-label-undo"),
    path("c/<slug:campaign_slug>/label/guidelines/", labeling.guidelines_seen, name="campaign-label-guidelines-seen"),
    path("dashboard/", dashboard.overview, name="dashboard"),
    path("dashboard/models/", dashboard.models, name="dashboard-models"),
    path("dashboard/runs/", dashboard.run_request, name="dashboard-run-request"),
    path("dashboard/policies/samples/", dashboard.policy_samples, name="dashboard-policy-samples"),
    path("dashboard/<str:kind>/<str:name>/activate/", dashboard.version_activate_view, name="dashboard-version-activate"),
    path("dashboard/quality/", dashboard.quality, name="dashboard-quality"),
    path("dashboard/gold/promote/", dashboard.gold_promote, name="dashboard-gold-promote"),
    path("dashboard/guidelines/", dashboard.guidelines_update, name="dashboard-guidelines"),
    path("dashboard/comparisons/<id:comparison_id>/gold/", dashboard.gold_mark, name="dashboard-gold-mark"),
    path("dashboard/review/", dashboard.review, name="dashboard-review"),
    path("dashboard/review/<id:comparison_id>/", dashboard.adjudicate, name="dashboard-adjudicate"),
    path("dashboard/arena/", dashboard.arena, name="dashboard-arena"),
    path("dashboard/processes/", health.processes_panel, name="dashboard-processes"),
    # A campaign's own dashboard: its counters, label quality, guidelines, review queue, model lines and arena.
    path("c/<slug:campaign_slug>/dashboard/", dashboard.overview, name="campaign-dashboard"),
    path("c/<slug:campaign_slug>/dashboard/models/", dashboard.models, name="campaign-dashboard-models"),
    path("c/<slug:campaign_slug>/dashboard/runs/", dashboard.run_request, name="campaign-dashboard-run-request"),
    path("c/<slug:campaign_slug>/dashboard/policies/samples/", dashboard.policy_samples, name="campaign-dashboard-policy-samples"),
    path("c/<slug:campaign_slug>/dashboard/<str:kind>/<str:name>/activate/", dashboard.version_activate_view, name="campaign-dashboard-version-activate"),
    path("c/<slug:campaign_slug>/dashboard/arena/", dashboard.arena, name="campaign-dashboard-arena"),
    path("c/<slug:campaign_slug>/dashboard/quality/", dashboard.quality, name="campaign-dashboard-quality"),
    path("c/<slug:campaign_slug>/dashboard/guidelines/", dashboard.guidelines_update, name="campaign-dashboard-guidelines"),
    path("c/<slug:campaign_slug>/dashboard/gold/promote/", dashboard.gold_promote, name="campaign-dashboard-gold-promote"),
    path("c/<slug:campaign_slug>/dashboard/comparisons/<id:comparison_id>/gold/", dashboard.gold_mark, name="campaign-dashboard-gold-mark"),
    path("c/<slug:campaign_slug>/dashboard/review/", dashboard.review, name="campaign-dashboard-review"),
    path("c/<slug:campaign_slug>/dashboard/review/<id:comparison_id>/", dashboard.adjudicate, name="campaign-dashboard-adjudicate"),
    # Browsers ask for /favicon.ico where a page names no icon (the admin, a JSON answer).
    path("favicon.ico", home.favicon),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]

handler404 = "feedback_app.api.exceptions.api_not_found"
