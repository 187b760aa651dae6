"""API URLs, under /api/ (feedback_app.urls registers the <id:...> converter before it includes these)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from feedback_app.api import stats, tokens, training, views

# What one campaign's members call: the unscoped paths below mean the default campaign, these
# under /api/v1/campaigns/<slug>/ mean that campaign.
_campaign_scoped = [
    path("guidelines/", views.GuidelinesView.as_view()),
    path("comparisons/next/", views.NextComparisonView.as_view()),
    path("comparisons/<id:comparison_id>/label/", views.LabelView.as_view()),
    path("comparisons/<id:comparison_id>/skip/", views.SkipView.as_view()),
    path("export/preferences/", views.ExportPreferencesView.as_view()),
    path("prompts/", views.PromptsBulkView.as_view()),
    path("stats/", stats.StatsIndexView.as_view()),
    path("stats/<str:name>/", stats.StatsView.as_view()),
    path("training-runs/", training.TrainingRunsView.as_view()),
    path("training-runs/<id:run_id>/", training.TrainingRunView.as_view()),
    path("score/", training.ScoreView.as_view()),
    path("policies/<str:name>/generate/", training.PolicyGenerateView.as_view()),
    path("<str:kind>/<str:name>/activate/", training.VersionActivateView.as_view()),
]

urlpatterns = [
    # the labeling calls first: they are most of the requests, and the resolver tries the patterns in order
    path("v1/comparisons/next/", views.NextComparisonView.as_view(), name="api-comparison-next"),
    path("v1/comparisons/<id:comparison_id>/label/", views.LabelView.as_view(), name="api-comparison-label"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("v1/auth/token/", tokens.TokenView.as_view(), name="api-token"),
    path("v1/campaigns/", views.CampaignsView.as_view(), name="api-campaigns"),
    *[path(f"v1/campaigns/<slug:campaign_slug>/{p.pattern}", p.callback, name=f"api-campaign-{i}") for i, p in enumerate(_campaign_scoped)],
    path("v1/guidelines/", views.GuidelinesView.as_view(), name="api-guidelines"),
    path("v1/comparisons/<id:comparison_id>/skip/", views.SkipView.as_view(), name="api-comparison-skip"),
    path("v1/export/preferences/", views.ExportPreferencesView.as_view(), name="api-export-preferences"),
    path("v1/prompts/", views.PromptsBulkView.as_view(), name="api-prompts"),
    path("v1/training-runs/", training.TrainingRunsView.as_view(), name="api-training-runs"),
    path("v1/training-runs/<id:run_id>/", training.TrainingRunView.as_view(), name="api-training-run"),
    path("v1/score/", training.ScoreView.as_view(), name="api-score"),
    path("v1/stats/", stats.StatsIndexView.as_view(), name="api-stats"),
    path("v1/stats/<str:name>/", stats.StatsView.as_view(), name="api-stats-detail"),
    path("v1/policies/<str:name>/generate/", training.PolicyGenerateView.as_view(), name="api-policy-generate"),
    path("v1/<str:kind>/<str:name>/activate/", training.VersionActivateView.as_view(), name="api-version-activate"),
]
