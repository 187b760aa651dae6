from datetime import UTC, datetime

import pytest

from feedback_app.models import Comparison, PolicyVersion, PreferenceLabel, Prompt
from feedback_app.selectors.dashboard import arena_games, arena_standings, labels_over_time, queue_depths

pytestmark = pytest.mark.django_db


def test_arena_standings_from_human_votes_and_the_reward_model(make_user):
    base = PolicyVersion.objects.create(name="policy-base", path="p/b")
    measured = {"win_rate_vs_parent": 0.7, "mean_reply_tokens": 41.2, "kl_to_base": 1.2346, "kl_to_base_per_token": 0.0299}
    new = PolicyVersion.objects.create(name="policy-new", path="p/n", parent=base, metrics=measured)
    for i, winner in enumerate(["a", "a", "a", "b", "tie", "both_bad"]):
        prompt = Prompt.objects.create(text=f"q{i}")
        a = prompt.responses.create(text="new", policy_version=new)
        b = prompt.responses.create(text="old", policy_version=base)
        # Half the comparisons show the new policy as B, as supply may after a rollback.
        first, second = (a, b) if i % 2 == 0 else (b, a)
        c = Comparison.objects.create(prompt=prompt, response_a=first, response_b=second, kind="arena", rm_prob_a_wins=0.9 if first == a else 0.2)
        flipped = {"a": "b", "b": "a"}.get(winner, winner) if first == b else winner
        PreferenceLabel.objects.create(comparison=c, rater=make_user(), winner=flipped)
    games = arena_games()
    assert len(games) == 6
    standings = {v["name"]: v for v in arena_standings(samples=50)["versions"]}
    new_row = standings["policy-new"]
    # new won 3, lost 1, tied 2 (a tie and a both-bad): (3 + 1) / 6
    assert new_row["human_win_rate_vs_parent"]["rate"] == pytest.approx(4 / 6)
    assert new_row["rm_win_rate_vs_parent"] == {"rate": 1.0, "n": 6}
    assert new_row["rm_win_rate_at_training"] == 0.7
    assert (new_row["mean_reply_tokens"], new_row["kl_to_base"], new_row["kl_to_base_per_token"]) == (41.2, 1.2346, 0.0299)
    assert standings["policy-base"]["kl_to_base"] is None  # the base was never trained, so measured nothing
    assert new_row["rating"] > standings["policy-base"]["rating"]
    assert new_row["low"] <= new_row["rating"] <= new_row["high"]


def test_labels_over_time_counts_raters_labels_per_hour_with_every_hour_present(monkeypatch, make_comparisons, make_user):
    """At 14:25, six hours are 09:00 to 14:00: three labels at 12, two at 14, none elsewhere;
    a label before 09:00 and an imported one (no rater) are not counted."""
    from django.utils import timezone

    now = datetime(2026, 3, 10, 14, 25, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    at = {"12:05": 1, "12:30": 1, "12:59": 1, "14:00": 1, "14:20": 1, "08:59": 1, "13:30": None}
    for (hhmm, rater), comparison in zip(at.items(), make_comparisons(len(at)), strict=True):
        hour, minute = map(int, hhmm.split(":"))
        label = PreferenceLabel.objects.create(comparison=comparison, rater=make_user() if rater else None, winner="a")
        PreferenceLabel.objects.filter(pk=label.pk).update(created_at=now.replace(hour=hour, minute=minute))
    series = labels_over_time(hours=6)
    assert series == [{"hour": now.replace(hour=h, minute=0).isoformat(), "labels": n}
                      for h, n in [(9, 0), (10, 0), (11, 0), (12, 3), (13, 0), (14, 2)]]


def test_queue_depths_without_redis_say_unknown(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert queue_depths() == {"default": None, "gpu": None, "policy": None, "score": None}
