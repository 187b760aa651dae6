"""The fragments websockets push: each renders with the id htmx swaps it in by, from the database as it is."""

import json
import re

import pytest

from feedback_app import live
from feedback_app.models import PolicyVersion, PreferenceLabel, RewardModelVersion, TrainingRun

pytestmark = pytest.mark.django_db


def test_the_counters_carry_todays_labels_open_comparisons_and_the_series(make_comparisons, rater):
    comparisons = make_comparisons(3)
    PreferenceLabel.objects.create(comparison=comparisons[0], rater=rater, winner="a", strength=2)
    html = live.dashboard_counters_html()
    assert html.lstrip().startswith('<div id="counters"')
    assert re.search(r'data-testid="labels-today">1<', html) and re.search(r'data-testid="open-comparisons">3<', html)
    series = json.loads(re.search(r'<script type="application/json" id="live-series">(.*?)</script>', html, re.S).group(1))
    assert sum(point["labels"] for point in series["labels_over_time"]) == 1


def test_the_run_panel_shows_the_running_run_before_a_newer_finished_one():
    assert 'id="training-run"' in live.training_run_html() and "No training run yet." in live.training_run_html()
    running = TrainingRun.objects.create(kind="reward_fast", status="running", progress={"phase": "heads", "step": 1, "total_steps": 4})
    TrainingRun.objects.create(kind="reward_full", status="failed", error="CUDA out of memory")
    html = live.training_run_html()
    assert f"Run {running.pk}" in html and "step 1 / 4" in html and 'value="25"' in html


def test_a_run_by_id_renders_its_panel_and_a_missing_run_none():
    version = RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001")
    run = TrainingRun.objects.create(kind="reward_fast", status="succeeded", reward_model_version=version,
                                     metrics={"val_accuracy": 0.8123, "gate": "no reward model was active"})
    html, campaign_id = live.training_run_html_by_id(run.pk)
    assert f"Run {run.pk}" in html and "→ rm-00001" in html and "validation accuracy 0.812" in html
    assert campaign_id == 1  # pushed to the default campaign's dashboards
    assert live.training_run_html_by_id(999_999) is None


def test_the_health_panel_renders(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nobody there: every queue silent
    html = live.health_html()
    assert html.lstrip().startswith('<div id="health"') and 'data-ok="no"' in html


def test_the_charts_carry_every_reward_version_and_the_active_ones_calibration():
    """What a swap or a run that succeeded pushes: the chart data by the id the page's has, and the calibration's caption."""
    html = live.dashboard_charts_html()
    data = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert data["reward_models"] == [] and data["calibration"] is None and '<span id="calibration-of"></span>' in html
    RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001", status="retired", metrics={"val_accuracy": 0.61})
    RewardModelVersion.objects.create(name="rm-00002", path="reward/rm-00002", status="active",
                                      metrics={"val_accuracy": 0.66, "val_ece": 0.0412, "calibration": [{"p_mean": 0.7, "accuracy": 0.68, "count": 9}]})
    html = live.dashboard_charts_html()
    data = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert [(v["name"], v["val_accuracy"]) for v in data["reward_models"]] == [("rm-00001", 0.61), ("rm-00002", 0.66)]
    assert data["calibration"]["bins"] == [{"p_mean": 0.7, "accuracy": 0.68, "count": 9}]
    assert '<span id="calibration-of"> (rm-00002, ECE 0.041)</span>' in html
    assert set(data) == set(live.dashboard_charts())  # the page's data and the pushed data are the same


def test_a_reconnecting_dashboard_gets_the_counters_and_the_run():
    html = live.dashboard_state_html()
    assert 'id="counters"' in html and 'id="training-run"' in html


def test_the_rater_state_is_the_active_policy_and_todays_count(make_comparisons, rater, make_user):
    assert re.search(r'id="policy-badge".*<strong>–</strong>', live.rater_state_html(user=rater, campaign_id=1))
    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="active")
    for comparison in make_comparisons(2):
        PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner="a", strength=2)
    html = live.rater_state_html(user=rater, campaign_id=1)
    assert "<strong>policy-base</strong>" in html and '<strong id="today-count">2</strong>' in html
    assert '<strong id="today-count">0</strong>' in live.rater_state_html(user=make_user(), campaign_id=1)


def test_the_policy_toast_names_the_policy_and_swaps_out_of_band():
    html = live.policy_toast_html(name="policy-00007")
    assert 'id="toasts" hx-swap-oob="beforeend"' in html and html.count("<strong>policy-00007</strong>") == 2


def test_the_queue_notice_reloads_the_workspace():
    html = live.queue_notice_html()
    assert 'id="queue-notice"' in html and 'hx-target="#workspace"' in html and 'hx-get="/label/"' in html
    from feedback_app.services.campaigns import campaign_create

    billing = campaign_create(slug="billing", name="Billing")
    assert 'hx-get="/c/billing/label/"' in live.queue_notice_html(campaign_id=billing.pk)  # a campaign's raters load its own page


def test_a_push_reads_the_labels_since_the_last_close_once(make_comparisons, rater, monkeypatch):
    """The counters and the series of one push share one read of the live labels (and labels per minute reads the closed
    minutes' rows): a busy studio's minute of labels is counted once a push, not three times."""
    from datetime import timedelta

    from django.utils import timezone

    from feedback_app.selectors import label_tally
    from feedback_app.services.label_tally import label_hours_close

    comparisons = make_comparisons(2)
    PreferenceLabel.objects.create(comparison=comparisons[0], rater=rater, winner="a", strength=2)
    PreferenceLabel.objects.filter(rater=rater).update(created_at=timezone.now() - timedelta(minutes=3))
    label_hours_close()
    PreferenceLabel.objects.create(comparison=comparisons[1], rater=rater, winner="b", strength=2)
    reads = []
    counted = label_tally.labels_in_window_by_hour
    monkeypatch.setattr(label_tally, "labels_in_window_by_hour", lambda **kw: reads.append(kw) or counted(**kw))
    html = live.dashboard_counters_html()
    per_minute = float(re.search(r'data-testid="labels-per-minute">([0-9.]+)<', html).group(1))
    assert len(reads) == 1 and round(2 / 6, 2) <= per_minute <= 2 / 5  # both labels, over five to six minutes
