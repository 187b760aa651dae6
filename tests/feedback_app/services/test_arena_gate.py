"""The arena gate: a promoted policy clearly worse than its parent by human votes goes back to the parent, once, with its reasons."""

import pytest
from django.utils import timezone

from feedback_app.models import Assignment, AuditEntry, Comparison, PolicyVersion, PreferenceLabel, Prompt, Response, VersionStatus
from feedback_app.services import arena_gate
from feedback_app.services.arena_gate import arena_ask_after_commit, arena_rollback_decision, policy_arena_check
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


@pytest.fixture
def lineage(db):
    """The base policy (retired) and its child "policy-00001" (active)."""
    base = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status=VersionStatus.RETIRED)
    child = PolicyVersion.objects.create(name="policy-00001", path="policy/policy-00001", parent=base, status=VersionStatus.ACTIVE)
    return base, child


def arena_comparison(first: PolicyVersion, second: PolicyVersion) -> Comparison:
    prompt = Prompt.objects.create(text="Where is my parcel?", source="test")
    a = Response.objects.create(prompt=prompt, text=f"reply of {first.name}", policy_version=first)
    b = Response.objects.create(prompt=prompt, text=f"reply of {second.name}", policy_version=second)
    return Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, kind=Comparison.Kind.ARENA)


def votes(rater, player, opponent, *, wins=0, losses=0, ties=0, both_bad=0):
    """Record human arena votes of ``player`` against ``opponent``, half of them with the sides swapped."""
    outcomes = ["win"] * wins + ["loss"] * losses + ["tie"] * ties + ["both_bad"] * both_bad
    for i, outcome in enumerate(outcomes):
        swapped = i % 2 == 1
        comparison = arena_comparison(opponent, player) if swapped else arena_comparison(player, opponent)
        if outcome in ("win", "loss"):
            winner = "a" if (outcome == "win") != swapped else "b"
        else:
            winner = outcome
        PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner=winner)


def test_the_rule_counts_decisive_votes_and_needs_the_whole_wilson_interval_below_one_half():
    assert arena_rollback_decision(wins=6, losses=24, min_votes=20)[0] is True
    low, high = arena_rollback_decision(wins=6, losses=24, min_votes=20)[1]
    assert 0.09 < low < 0.11 and 0.37 < high < 0.38
    assert arena_rollback_decision(wins=12, losses=18, min_votes=20)[0] is False  # interval [0.246, 0.577] reaches 0.5
    assert arena_rollback_decision(wins=2, losses=17, min_votes=20)[0] is False  # 19 decisive votes: too few
    assert arena_rollback_decision(wins=0, losses=0, min_votes=20) == (False, None)


def test_six_wins_and_twenty_four_losses_roll_the_policy_back_with_its_reasons(settings, lineage, rater):
    settings.ARENA_MIN_VOTES = 20
    base, child = lineage
    votes(rater, child, base, wins=6, losses=24, ties=3, both_bad=2)
    assert policy_arena_check() == base
    base.refresh_from_db()
    child.refresh_from_db()
    assert base.status == VersionStatus.ACTIVE and child.status == VersionStatus.RETIRED
    record = child.metrics["rolled_back"]
    assert (record["wins"], record["losses"], record["ties"], record["both_bad"], record["to"]) == (6, 24, 3, 2, "policy-base")
    assert record["interval"][1] < 0.5 and record["min_votes"] == 20
    entry = AuditEntry.objects.get(action="policyversion.rollback")
    assert entry.actor is None and entry.target == "policy-base" and entry.details["previous"] == "policy-00001"
    assert "6 wins, 24 losses" in entry.details["reason"] and "Wilson interval" in entry.details["reason"]


def test_twelve_wins_and_eighteen_losses_keep_the_policy(settings, lineage, rater):
    settings.ARENA_MIN_VOTES = 20
    base, child = lineage
    votes(rater, child, base, wins=12, losses=18)
    assert policy_arena_check() is None
    child.refresh_from_db()
    assert child.status == VersionStatus.ACTIVE and "rolled_back" not in child.metrics
    assert not AuditEntry.objects.filter(action__startswith="policyversion").exists()


def test_fewer_decisive_votes_than_the_minimum_keep_the_policy_whatever_the_ties(settings, lineage, rater):
    settings.ARENA_MIN_VOTES = 20
    base, child = lineage
    votes(rater, child, base, wins=0, losses=19, ties=10, both_bad=10)
    assert policy_arena_check() is None
    child.refresh_from_db()
    assert child.status == VersionStatus.ACTIVE


def test_the_base_policy_is_never_rolled_back(settings, rater):
    settings.ARENA_MIN_VOTES = 20
    base = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status=VersionStatus.ACTIVE)
    other = PolicyVersion.objects.create(name="policy-00002", path="policy/policy-00002", parent=base, status=VersionStatus.RETIRED)
    votes(rater, base, other, wins=0, losses=30)
    assert policy_arena_check() is None
    base.refresh_from_db()
    assert base.status == VersionStatus.ACTIVE and not AuditEntry.objects.filter(action__startswith="policyversion").exists()


def test_a_second_check_does_nothing_and_a_version_made_active_again_by_a_person_stays(settings, lineage, rater):
    from feedback_app.services.versions import version_activate

    settings.ARENA_MIN_VOTES = 20
    base, child = lineage
    votes(rater, child, base, wins=6, losses=24)
    assert policy_arena_check() == base
    assert policy_arena_check() is None  # the parent has no parent to go back to
    version_activate(version=child, user=rater, action="rollback", reason="a researcher disagrees")
    assert policy_arena_check() is None
    child.refresh_from_db()
    assert child.status == VersionStatus.ACTIVE
    assert AuditEntry.objects.filter(action="policyversion.rollback", actor=None).count() == 1


def test_a_pruned_parent_is_logged_and_the_policy_stays(settings, lineage, rater, caplog):
    settings.ARENA_MIN_VOTES = 20
    base, child = lineage
    PolicyVersion.objects.filter(pk=base.pk).update(status=VersionStatus.PRUNED, pruned_at=timezone.now())
    votes(rater, child, base, wins=6, losses=24)
    assert policy_arena_check() is None
    child.refresh_from_db()
    assert child.status == VersionStatus.ACTIVE and "rolled_back" not in child.metrics
    assert "cannot be rolled back" in caplog.text


def test_imported_and_ai_votes_do_not_count(settings, lineage):
    settings.ARENA_MIN_VOTES = 20
    base, child = lineage
    for _ in range(30):
        PreferenceLabel.objects.create(comparison=arena_comparison(child, base), rater=None, winner="b")
    assert policy_arena_check() is None


def test_an_arena_label_asks_the_gate_once_it_commits_and_a_standard_label_does_not(lineage, rater, monkeypatch,
                                                                                      django_capture_on_commit_callbacks):
    asked = []
    monkeypatch.setattr(arena_gate, "policy_arena_check", lambda campaign_id: asked.append(campaign_id))
    base, child = lineage
    now = timezone.now()
    arena, standard = arena_comparison(child, base), arena_comparison(child, base)
    Comparison.objects.filter(pk=standard.pk).update(kind=Comparison.Kind.STANDARD)
    for comparison in (arena, standard):
        Assignment.objects.create(comparison=comparison, rater=rater, a_on_left=True, leased_at=now, lease_expires_at=now + timezone.timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        label_record(campaign=campaign_default(), rater=rater, comparison_id=standard.pk, submission=LabelSubmission(choice="left"))
    assert asked == []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        label_record(campaign=campaign_default(), rater=rater, comparison_id=arena.pk, submission=LabelSubmission(choice="left"))
    assert asked == []  # nothing inside the label's transaction
    for callback in callbacks:
        callback()
    assert asked == [1]  # the default campaign's active policy


def test_the_ask_schedules_the_check_for_the_commit(monkeypatch, django_capture_on_commit_callbacks):
    asked = []
    monkeypatch.setattr(arena_gate, "policy_arena_check", lambda campaign_id: asked.append(campaign_id))
    with django_capture_on_commit_callbacks(execute=True):
        arena_ask_after_commit()
    assert asked == [1]  # the default campaign's active policy


def test_the_gate_counts_the_votes_of_every_serving_mode_together(settings, lineage, rater):
    """Rerank re-points at each reward model without a new version: votes served sampled and reranked add up for the version."""
    from feedback_app.selectors.arena import arena_record

    settings.ARENA_MIN_VOTES = 20
    base, child = lineage
    votes(rater, child, base, wins=3, losses=12)
    Comparison.objects.update(policy_mode="sample")
    votes(rater, child, base, wins=3, losses=12)
    Comparison.objects.filter(policy_mode="").update(policy_mode="rerank")
    assert arena_record(player=child.name, opponent=base.name, mode="rerank") == {"wins": 3, "losses": 12, "ties": 0, "both_bad": 0}
    assert policy_arena_check() == base  # 6 wins, 24 losses in all; neither mode alone has 20 decisive votes
