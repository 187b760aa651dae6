import pytest

from feedback_app.models import Comparison, PolicyVersion, PreferenceLabel, Prompt
from feedback_app.selectors.dashboard import arena_games, arena_standings, labels_over_time, queue_depths

pytestmark = pytest.mark.django_db


def test_arena_standings_from_human_votes_and_the_reward_model(make_user):
    base = PolicyVersion.objects.create(name="policy-base", path="p/b")
    new = PolicyVersion.objects.create(name="policy-new", path="p/n", parent=base, metrics={"win_rate_vs_parent": 0.7})
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
    assert new_row["rating"] > standings["policy-base"]["rating"]
    assert new_row["low"] <= new_row["rating"] <= new_row["high"]


def test_labels_over_time_has_every_hour():
    series = labels_over_time(hours=6)
    assert len(series) in (6, 7) and all(point["labels"] == 0 for point in series)


def test_queue_depths_without_redis_say_unknown(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert queue_depths() == {"default": None, "gpu": None, "score": None}
