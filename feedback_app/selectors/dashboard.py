"""What the researcher cockpit shows: counters, series for the plots, the arena standings."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PolicyVersion, PreferenceLabel, RewardModelVersion, ServingMode, TrainingRun
from feedback_app.selectors.arena import arena_record
from feedback_app.selectors.campaigns import campaign_cached
from feedback_app.selectors.label_tally import (
    LiveHours,
    active_rater_count,
    label_hours_live,
    labels_per_minute,
    labels_total_count,
    rater_labels_by_hour,
)
from feedback_app.selectors.supply import open_comparison_count
from feedback_app.selectors.training import reward_labels_unlearned, reward_model_active
from feedback_app.stats.ratings import bradley_terry_bootstrap, win_rate

logger = logging.getLogger(__name__)
QUEUES = ("default", "gpu", "policy", "score")
ARENA_SCORES = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}


def queue_depths() -> dict[str, int | None]:
    """Return the messages waiting in each Celery queue (None when Redis does not answer)."""
    import redis

    queues = QUEUES + (("judge",) if settings.AI_FEEDBACK else ())
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
        return {queue: int(client.llen(queue)) for queue in queues}
    except (redis.RedisError, OSError) as exc:
        logger.info("queue depths unavailable: %s", exc)
        return {queue: None for queue in queues}


def _labels(campaign_id: int):
    """The labels a campaign's dashboard counts."""
    return PreferenceLabel.objects.filter(campaign_id=campaign_id)


OPEN_SHOWN_UP_TO = 10_000  # the open comparisons (and labels a reward model has not learned) a dashboard counts before it says "10000+"


def overview_counters(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, live: LiveHours | None = None) -> dict:
    """Return the live counters of the campaign's dashboard, with its active models; ``live``, when the caller read it
    (``label_hours_live``), serves for the labels since the last close."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    active_rm = RewardModelVersion.objects.active().filter(campaign_id=campaign_id).values_list("name", flat=True).first()
    active_policy = PolicyVersion.objects.active().filter(campaign_id=campaign_id).values_list("name", flat=True).first()
    config = campaign_cached(campaign_id=campaign_id)
    live = live or label_hours_live(campaign_id=campaign_id)  # the labels since the last close, read once for the total and today's
    total, target = labels_total_count(campaign_id=campaign_id, live=live), config.label_target
    opened = open_comparison_count(campaign_id=campaign_id, statuses=(Comparison.Status.OPEN,), cap=OPEN_SHOWN_UP_TO)
    return {
        "labels_per_minute": labels_per_minute(campaign_id=campaign_id, live=live),
        "labels_today": sum(rater_labels_by_hour(campaign_id=campaign_id, start=today, live=live).values()),
        "labels_total": total,
        "label_target": target,
        "target_percent": round(100 * total / target, 1) if target else None,
        "state": config.state,
        "open_comparisons": opened,
        "open_comparisons_more": opened >= OPEN_SHOWN_UP_TO,  # at least that many: the page shows "10000+"
        "active_raters": active_rater_count(),
        "queues": queue_depths() if campaign_id == DEFAULT_CAMPAIGN_ID else {},  # the workers serve every campaign; shown once
        "reward_model": active_rm,
        # the labels the next refit would learn: a backlog that only grows says the refits fall behind (README, "Refit lag")
        "reward_unlearned": (unlearned := reward_labels_unlearned(campaign_id=campaign_id, cap=OPEN_SHOWN_UP_TO)),
        "reward_unlearned_more": unlearned >= OPEN_SHOWN_UP_TO,
        "policy": active_policy,
    }


def training_run_current(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> TrainingRun | None:
    """Return the campaign's run training now, else its most recent one."""
    runs = TrainingRun.objects.select_related("reward_model_version", "policy_version").filter(campaign_id=campaign_id)
    return runs.filter(status=TrainingRun.Status.RUNNING).order_by("-id").first() or runs.order_by("-id").first()


def labels_over_time(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, hours: int = 48, live: LiveHours | None = None) -> list[dict]:
    """Return labels per hour over the last ``hours`` (hours without labels included, as 0); ``live`` as for ``overview_counters``."""
    now = timezone.now()
    start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    counts = rater_labels_by_hour(campaign_id=campaign_id, start=start, live=live)
    series = []
    hour = start
    while hour <= now:
        series.append({"hour": hour.isoformat(), "labels": counts.get(hour, 0)})
        hour += timedelta(hours=1)
    return series


def reward_model_history(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> list[dict]:
    """Return every reward version of the campaign's line, oldest first, with its validation figures and the active one's then."""
    rows = []
    for v in RewardModelVersion.objects.filter(campaign_id=campaign_id).select_related("parent").order_by("id"):
        m = v.metrics or {}
        baseline = m.get("baseline") or {}
        rows.append({
            "name": v.name, "status": v.status, "tier": v.tier, "parent": v.parent.name if v.parent else None,
            "val_accuracy": m.get("val_accuracy"), "val_loss": m.get("val_loss"), "val_ece": m.get("val_ece"),
            "baseline_accuracy": baseline.get("val_accuracy"), "n_train": m.get("n_train"), "n_validation": m.get("n_validation"),
            "data_range": v.data_range, "gate": m.get("gate"), "created_at": v.created_at.isoformat(), "ai_labels": m.get("ai_labels") or {},
            "activated_at": v.activated_at.isoformat() if v.activated_at else None,
            "heads_warm_from": m.get("heads_warm_from"),  # a fast refit from that version's heads, on the new pairs and a replay
        })
    return rows


def calibration_active(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict | None:
    """Return the campaign's active reward model's reliability bins on its validation pairs."""
    v = reward_model_active(campaign_id=campaign_id)
    if v is None:
        return None
    return {"name": v.name, "bins": (v.metrics or {}).get("calibration") or [], "ece": (v.metrics or {}).get("val_ece")}


def arena_games(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> list[tuple[str, str, float]]:
    """Return (policy of A, policy of B, score of A) for every human vote on an arena comparison of the campaign.

    A tie scores one half; so does "both bad", which says neither reply is better.
    """
    labels = _labels(campaign_id).filter(comparison__kind=Comparison.Kind.ARENA, rater__isnull=False).values_list(
        "comparison__response_a__policy_version__name", "comparison__response_b__policy_version__name", "winner")
    return [(a, b, ARENA_SCORES[w]) for a, b, w in labels if a and b]


def arena_records_by_mode(*, player: str, opponent: str) -> list[dict]:
    """Return {"mode", "wins", "losses", "ties", "both_bad"} of ``player`` against ``opponent`` per serving mode with votes
    (the mode its arena comparisons were served in), sample first."""
    records = [{"mode": mode, **arena_record(player=player, opponent=opponent, mode=mode)} for mode in ServingMode.values]
    return [r for r in records if r["wins"] + r["losses"] + r["ties"] + r["both_bad"]]


def arena_standings(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, samples: int = 200) -> dict:
    """Return the campaign's Bradley-Terry ratings with bootstrap intervals, and each of its versions' win rate vs its parent.

    Win rates come from human votes on arena comparisons (in all, and per serving mode) and, side
    by side, from the reward model: its mean P(new beats parent) on the same comparisons, and the
    win rate its DPO run measured on held-out prompts when the version was made, with its replies'
    mean length and its KL to the base there.
    """
    games = arena_games(campaign_id=campaign_id)
    line = PolicyVersion.objects.filter(campaign_id=campaign_id)
    players = list(line.order_by("id").values_list("name", flat=True))
    ratings = bradley_terry_bootstrap(games, players=players, samples=samples, seed=0) if games else {}
    rm_p = defaultdict(list)
    for a, b, p in Comparison.objects.filter(kind=Comparison.Kind.ARENA, rm_prob_a_wins__isnull=False, prompt__campaign_id=campaign_id).values_list(
            "response_a__policy_version__name", "response_b__policy_version__name", "rm_prob_a_wins"):
        rm_p[(a, b)].append(p)
    versions = []
    for v in line.select_related("parent").order_by("id"):
        metrics = v.metrics or {}
        row = {"name": v.name, "status": v.status, "parent": v.parent.name if v.parent else None, **ratings.get(v.name, {}),
               "serving_mode": v.serving_mode, "rolled_back": metrics.get("rolled_back"),  # the arena gate's record (services.arena_gate)
               # what its DPO run measured on the held-out prompts: its replies' mean length, its KL to the base policy
               "mean_reply_tokens": metrics.get("mean_reply_tokens"), "kl_to_base": metrics.get("kl_to_base"),
               "kl_to_base_per_token": metrics.get("kl_to_base_per_token"), "ai_labels": metrics.get("ai_labels") or {}}
        if v.parent:
            human = win_rate(games, player=v.name, opponent=v.parent.name)
            row["human_win_rate_vs_parent"] = human
            row["human_vs_parent_by_mode"] = arena_records_by_mode(player=v.name, opponent=v.parent.name)
            ps = rm_p.get((v.name, v.parent.name), []) + [1 - p for p in rm_p.get((v.parent.name, v.name), [])]
            row["rm_win_rate_vs_parent"] = {"rate": round(sum(p > 0.5 for p in ps) / len(ps), 4), "n": len(ps)} if ps else None
            row["rm_win_rate_at_training"] = metrics.get("win_rate_vs_parent")
        versions.append(row)
    return {"n_votes": len(games), "versions": versions, "arena_min_votes": settings.ARENA_MIN_VOTES}
