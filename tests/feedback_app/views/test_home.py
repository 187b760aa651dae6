import pytest


@pytest.mark.django_db
def test_raters_land_on_the_label_page_and_staff_on_the_dashboard(client, make_user):
    """The home page sends each role where it works; a visitor logs in first."""
    from feedback_app.models import Role

    assert client.get("/").url.startswith("/login/")
    client.force_login(make_user())
    assert client.get("/").url == "/label/"
    client.force_login(make_user(role=Role.RESEARCHER))
    assert client.get("/").url == "/dashboard/"


def test_favicon_ico_leads_to_the_studio_s_icon(client):
    """A browser asking /favicon.ico gets a permanent redirect to the icon, which the pages also name, not a 404."""
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301 and answer.url.endswith("/feedback_app/favicon.svg")
