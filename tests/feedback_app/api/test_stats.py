import pytest

from feedback_app.api.stats import STATS
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


def test_every_statistic_is_served_to_researchers(researcher, make_comparisons):
    make_comparisons(2)
    client = api_client_for(researcher)
    index = client.get("/api/v1/stats/").json()
    assert set(index) == set(STATS)
    for name in STATS:
        response = client.get(f"/api/v1/stats/{name}/")
        assert response.status_code == 200, name
        assert response.json()["name"] == name and "data" in response.json()
    overview = client.get("/api/v1/stats/overview/").json()["data"]
    assert overview["open_comparisons"] == 2 and set(overview["queues"]) == {"default", "gpu", "policy", "score"}
    assert len(client.get("/api/v1/stats/labels/?hours=5").json()["data"]) in (5, 6)
    assert client.get("/api/v1/stats/nope/").status_code == 404


def test_raters_get_no_statistics(rater):
    assert api_client_for(rater).get("/api/v1/stats/overview/").status_code == 403


def test_the_judges_figures_are_served_as_on_the_quality_page(researcher, make_judge, make_audits, settings):
    settings.AI_MIN_AUDITS = 5
    make_audits(make_judge("vllm"), n=4, agree=3)
    data = api_client_for(researcher).get("/api/v1/stats/judges/").json()["data"]
    (judge,) = data["judges"]
    assert judge["judge"]["name"] == "vllm" and judge["agreement"] == 0.75 and judge["n_audits"] == 4
    assert judge["trust"]["trusted"] is False and len(judge["reliability"]) == 5 and "switched off" in data["notice"]
