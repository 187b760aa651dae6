"""manage.py judge_backfill JUDGE: verdicts on labelled comparisons, counted; unknown or disabled judges are errors."""

import io

import pytest
from django.core.management import CommandError, call_command

from feedback_app import training_bridge
from feedback_app.models import PreferenceLabel, RewardModelVersion

pytestmark = pytest.mark.django_db


def test_backfill_command(make_judge, make_comparisons, make_user, monkeypatch):
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active")
    monkeypatch.setattr(training_bridge, "comparisons_rm_judge", lambda *, version_name, version_path, items, models: [(0.2, 0.0)] * len(items))
    judge = make_judge("rm", kind="reward_model", routing=False)
    rater = make_user()
    for comparison in make_comparisons(3):
        PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner="a")
    out = io.StringIO()
    call_command("judge_backfill", "rm", "--limit", "2", stdout=out)
    assert out.getvalue().strip() == "rm: 2 verdict(s): b 2."
    call_command("judge_backfill", "rm", stdout=out)
    assert "rm: 1 verdict(s): b 1." in out.getvalue()
    with pytest.raises(CommandError, match="no judge named 'nobody'"):
        call_command("judge_backfill", "nobody")
    judge.enabled = False
    judge.save()
    with pytest.raises(CommandError, match="disabled"):
        call_command("judge_backfill", "rm")
