"""URLs of the site, the admin and the API."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from feedback_app.views import home, labeling

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("label/", labeling.label_page, name="label"),
    path("label/<int:comparison_id>/", labeling.label_submit, name="label-submit"),
    path("label/<int:comparison_id>/skip/", labeling.label_skip, name="label-skip"),
    path("label/undo/", labeling.label_undo, name="label-undo"),
    path("admin/", admin.site.urls),
    path("api/", include("feedback_app.api.urls")),
]
