"""The labelling path's cost does not grow with history: next + label make the same queries at any number of labels."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from feedback_app.models import Comparison, PreferenceLabel, Role
from tests.conftest import api_client_for
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.models import Campaign

pytestmark = pytest.mark.django_db


def history(make_comparisons, raters, n: int) -> None:
    """Give each of ``raters`` ``n`` labelled, complete comparisons."""
    for rater in raters:
        done = make_comparisons(n)
        PreferenceLabel.objects.bulk_create([PreferenceLabel(comparison=c, campaign_id=c.prompt.campaign_id, rater=rater, winner="a") for c in done])
        Comparison.objects.filter(pk__in=[c.pk for c in done]).update(label_count=1, status=Comparison.Status.COMPLETE)


def one_round(client, comparison_id_expected: int, *, combined: bool) -> list[str]:
    """Return the SQL of one rater round: next then label (or label-and-next's label half once a lease is held)."""
    with CaptureQueriesContext(connection) as queries:
        leased = client.get("/api/v1/comparisons/next/").json()
        assert leased["id"] == comparison_id_expected
        suffix = "?next=1" if combined else ""
        assert client.post(f"/api/v1/comparisons/{leased['id']}/label/{suffix}", {"choice": "left", "strength": 2}, format="json").status_code == 201
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("combined", [False, True])
def test_next_and_label_make_as_many_queries_at_ten_times_the_labels(make_user, make_comparisons, settings, combined):
    """The rater's own history and the studio's (other raters' labels) grow tenfold; the query count stays the same.

    No gold pairs (their draw is random), and a first round warms the per-process caches (settings, token).
    """
    
    settings.REFIT_EVERY_N_LABELS, settings.POLICY_EVERY_N_LABELS = 0, 0
    Campaign.objects.filter(pk=campaign_default().pk).update(gold_rate=0.0)
    rater, others = make_user(Role.RATER), [make_user(Role.RATER) for _ in range(2)]
    client = api_client_for(rater)
    counts = []
    for n in (0, 5, 50):
        history(make_comparisons, [rater, *others], n)
        (fresh,) = make_comparisons(1)
        counts.append(len(one_round(client, fresh.pk, combined=combined)))
    assert counts[1] == counts[2], f"queries per next + label grew with the labels: {counts[1:]}"


def test_a_labels_after_commit_work_sends_the_dashboard_push_to_a_worker_and_reads_nothing(
        make_user, make_comparisons, settings, monkeypatch, django_capture_on_commit_callbacks):
    """The label's request never renders the dashboard's counters (they read windows of every label): it sends one message."""
    from django.core.cache import cache

    from feedback_app import events

    settings.REFIT_EVERY_N_LABELS, settings.POLICY_EVERY_N_LABELS = 0, 0
    Campaign.objects.filter(pk=campaign_default().pk).update(gold_rate=0.0)
    sent = []
    monkeypatch.setattr(events, "_enqueue", lambda name, *args, **kwargs: sent.append((name, args)))
    cache.delete(f"feedback_app:dashboard-push:{campaign_default().pk}")
    client = api_client_for(make_user(Role.RATER))
    (comparison,) = make_comparisons(1)
    assert client.get("/api/v1/comparisons/next/").json()["id"] == comparison.pk
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(f"/api/v1/comparisons/{comparison.pk}/label/", {"choice": "left"}, format="json").status_code == 201
    with CaptureQueriesContext(connection) as queries:
        for callback in callbacks:
            callback()
    assert sent == [("dashboard_push", (campaign_default().pk,))] and queries.captured_queries == []
