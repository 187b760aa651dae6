"""Server-rendered fragments that websockets push; htmx swaps each in by its id.

Below events (which push them) and beside the views (which render the same fragments in full
pages); it reads through selectors only.
"""

from __future__ import annotations

import json

from django.template.loader import render_to_string
from django.urls import reverse

from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_ID
from feedback_app.selectors.campaigns import campaign_cached
from feedback_app.selectors.dashboard import (
    arena_standings,
    calibration_active,
    labels_over_time,
    overview_counters,
    reward_model_history,
    training_run_current,
)
from feedback_app.selectors.label_tally import label_hours_live
from feedback_app.selectors.labeling import labels_today_count
from feedback_app.selectors.quality import agreement_over_time
from feedback_app.selectors.training import policy_active
from feedback_app.selectors.training_runs import training_run_get

TEMPLATE = "feedback_app/live.html"


def dashboard_counters_html(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> str:
    """Return a campaign's counters, and its labels-per-hour series for the plot, as they are now (the labels since the last
    close read once for both)."""
    live = label_hours_live(campaign_id=campaign_id)
    context = {"counters": overview_counters(campaign_id=campaign_id, live=live),
               "series_json": json.dumps({"labels_over_time": labels_over_time(campaign_id=campaign_id, live=live)})}
    return render_to_string(f"{TEMPLATE}#counters", context)


def dashboard_charts(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict:
    """Return the series of a campaign's model charts: its reward versions, its raters' agreement per day, its policies' win
    rates and its active reward model's calibration (labels per hour come with the counters)."""
    return {
        "reward_models": reward_model_history(campaign_id=campaign_id),
        "agreement": agreement_over_time(campaign_id=campaign_id),
        "arena": arena_standings(campaign_id=campaign_id, samples=100)["versions"],
        "calibration": calibration_active(campaign_id=campaign_id),
    }


def dashboard_charts_html(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> str:
    """Return a campaign's chart data (and the calibration chart's caption) as they are now: what a dashboard open since
    before a version went live or a run succeeded draws again, without a reload."""
    return render_to_string(f"{TEMPLATE}#charts", {"charts": dashboard_charts(campaign_id=campaign_id)})


def training_run_html(run=None, *, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> str:
    """Return the panel of ``run``, else of the campaign's running (or latest) training run."""
    return render_to_string(f"{TEMPLATE}#training_run", {"run": run or training_run_current(campaign_id=campaign_id)})


def training_run_html_by_id(run_id: int) -> tuple[str, int] | None:
    """Return the panel of training run ``run_id`` and its campaign's id; None when it is gone."""
    run = training_run_get(run_id=run_id)
    return None if run is None else (training_run_html(run), run.campaign_id)


def health_html() -> str:
    """Return the panel of queue heartbeats and supervised processes, as they are now."""
    from feedback_app.selectors.health import studio_readiness

    return render_to_string(f"{TEMPLATE}#health", {"health": studio_readiness()})


def dashboard_state_html(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> str:
    """Return everything a campaign's dashboard shows live, for a client that just (re)connected: a version that went live
    while it was away redraws its model charts (the page, on its first connect, finds the data it drew and keeps them)."""
    return dashboard_counters_html(campaign_id=campaign_id) + training_run_html(campaign_id=campaign_id) + dashboard_charts_html(campaign_id=campaign_id)


def rater_state_html(*, user, campaign_id: int) -> str:
    """Return the rater's badge and count for today in the campaign, for a client that just (re)connected."""
    policy = policy_active(campaign_id=campaign_id)
    return render_to_string(f"{TEMPLATE}#rater_state", {"policy": policy.name if policy else None,
                                                        "today_count": labels_today_count(rater=user, campaign_id=campaign_id)})


def policy_toast_html(*, name: str) -> str:
    """Return the toast and the badge that announce a new policy."""
    return render_to_string(f"{TEMPLATE}#policy_toast", {"policy": name})


def queue_notice_html(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> str:
    """Return the notice that replaces "all caught up" when new comparisons arrive; it loads the campaign's label page."""
    label_url = reverse("label") if campaign_id == DEFAULT_CAMPAIGN_ID else reverse("campaign-label", args=[campaign_cached(campaign_id=campaign_id).slug])
    return render_to_string(f"{TEMPLATE}#queue_notice", {"label_url": label_url})
