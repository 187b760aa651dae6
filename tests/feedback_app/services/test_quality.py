import pytest

from feedback_app import training_bridge
from feedback_app.models import Assignment, AuditEntry, PreferenceLabel
from feedback_app.selectors.exports import ExportFilters
from feedback_app.services.exports import export_stream
from feedback_app.selectors.training import verdicts
from feedback_app.services.training_data import labels_for_training
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.services.quality import (
    QualityError,
    comparison_adjudicate,
    comparison_mark_gold,
    comparison_unmark_gold,
    comparisons_promote_unanimous_to_gold,
)
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services.campaigns import CampaignError, campaign_settings_update
from tests.caches import caches_clear

pytestmark = pytest.mark.django_db


def label(rater, comparison_id=None, choice="left", a_on_left=True, **kwargs):
    assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
    assert comparison_id is None or assignment.comparison_id == comparison_id
    Assignment.objects.filter(pk=assignment.pk).update(a_on_left=a_on_left)
    return label_record(campaign=campaign_default(), rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice=choice, **kwargs))[0]


def test_settings_update_validates_and_is_audited(admin_user):
    campaign_settings_update(campaign=campaign_default(), user=admin_user, gold_rate=0.25, weight_by_trust=True)
    config = campaign_default()
    assert config.gold_rate == 0.25 and config.weight_by_trust and config.updated_by == admin_user
    entry = AuditEntry.objects.get(action="settings.update")
    assert entry.details["before"] == {"gold_rate": 0.1, "weight_by_trust": False}
    with pytest.raises(CampaignError, match="gold_rate must be within 0 and 1"):
        campaign_settings_update(campaign=campaign_default(), user=admin_user, gold_rate=2)
    with pytest.raises(CampaignError, match="unknown settings: color"):
        campaign_settings_update(campaign=campaign_default(), user=admin_user, color="red")
    with pytest.raises(CampaignError, match="label_target must be a whole number, 0 or more"):
        campaign_settings_update(campaign=campaign_default(), user=admin_user, label_target=-5)
    assert campaign_settings_update(campaign=campaign_default(), user=admin_user, label_target=500).label_target == 500


def test_the_dashboard_shows_the_progress_toward_the_label_target(admin_user, rater, make_comparisons):
    from feedback_app.live import dashboard_counters_html
    from feedback_app.selectors.dashboard import overview_counters

    (comparison,) = make_comparisons(1)
    assert overview_counters()["target_percent"] is None and 'data-testid="label-target"' not in dashboard_counters_html()
    campaign_settings_update(campaign=campaign_default(), user=admin_user, label_target=4)
    caches_clear()  # the on-commit invalidation does not run inside the test's transaction
    assert assignment_lease_next(campaign=campaign_default(), rater=rater).comparison_id == comparison.pk
    label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left"))
    assert (overview_counters()["label_target"], overview_counters()["target_percent"]) == (4, 25.0)
    assert '25.0%' in dashboard_counters_html() and "1 of 4 labels" in dashboard_counters_html()


def test_gold_pairs_are_mixed_into_every_queue_and_score_the_rater(make_user, make_comparisons, admin_user, settings):
    gold, plain = make_comparisons(2)
    comparison_mark_gold(comparison=gold, winner="a", user=admin_user)
    campaign_settings_update(campaign=campaign_default(), user=admin_user, gold_rate=1.0)
    caches_clear()  # the on-commit invalidation does not run inside the test's transaction
    raters = [make_user() for _ in range(3)]
    for rater in raters:  # required_labels is 1, but a gold pair goes to everyone
        assert assignment_lease_next(campaign=campaign_default(), rater=rater).comparison_id == gold.pk
        label_record(campaign=campaign_default(), rater=rater, comparison_id=gold.pk, submission=LabelSubmission(choice="left"))
    gold.refresh_from_db()
    assert gold.label_count == 3 and gold.status == "open"
    assert assignment_lease_next(campaign=campaign_default(), rater=raters[0]).comparison_id == plain.pk  # gold seen: the ordinary queue
    from feedback_app.selectors.quality import rater_quality

    quality = rater_quality()
    correct = {r.pk: quality[r.pk]["gold_correct"] for r in raters}
    expected = {r.pk: int(PreferenceLabel.objects.get(rater=r, comparison=gold).winner == "a") for r in raters}
    assert correct == expected and all(quality[r.pk]["gold_n"] == 1 for r in raters)
    comparison_unmark_gold(comparison=gold, user=admin_user)
    gold.refresh_from_db()
    assert not gold.is_gold and gold.status == "complete"


def test_unanimous_comparisons_become_gold(make_user, make_comparisons, admin_user):
    agreed, split = make_comparisons(2, required_labels=2)
    r1, r2 = make_user(), make_user()
    for r in (r1, r2):
        label(r, agreed.pk, choice="left")
    label(r1, split.pk, choice="left")
    label(r2, split.pk, choice="right")
    assert comparisons_promote_unanimous_to_gold(user=admin_user) == 1
    agreed.refresh_from_db()
    assert agreed.is_gold and agreed.gold_winner == "a"
    assert AuditEntry.objects.filter(action="comparison.gold").count() == 1


def test_adjudication_overrides_votes_and_exclusion_removes_from_training(make_user, make_comparisons, admin_user):
    disputed, flagged, fine = make_comparisons(3, required_labels=2)
    r1, r2 = make_user(), make_user()
    for c in (disputed, flagged, fine):
        label(r1, c.pk, choice="left", flags=("unsafe",) if c == flagged else ())
        label(r2, c.pk, choice="right" if c == disputed else "left")
    comparison_adjudicate(comparison=disputed, winner="b", exclude=False, note="B answers the question", user=admin_user)
    comparison_adjudicate(comparison=flagged, winner="", exclude=True, note="contains a phone number", user=admin_user)
    with pytest.raises(QualityError, match="give a verdict"):
        comparison_adjudicate(comparison=fine, winner="", exclude=False, note="", user=admin_user)
    labels, _ = labels_for_training()
    pairs = {p.pair_id: p for p in training_bridge.preference_pairs(labels, verdicts=verdicts())}
    assert set(pairs) == {str(disputed.pk), str(fine.pk)}
    assert pairs[str(disputed.pk)].chosen == disputed.response_b.text and pairs[str(disputed.pk)].weight == 1.0
    trl = b"".join(export_stream(fmt="trl", filters=ExportFilters())).decode()
    assert f'"comparison_id": {flagged.pk}' not in trl and f'"comparison_id": {disputed.pk}' in trl
    assert AuditEntry.objects.filter(action="comparison.adjudicate").count() == 2


def test_trust_weights_and_threshold_shape_training(make_user, make_comparisons, admin_user):
    from feedback_app.selectors.quality import rater_trust, rater_weights

    c1, c2 = make_comparisons(2, required_labels=3)
    good, also_good, contrarian = make_user(), make_user(), make_user()
    for c in (c1, c2):
        label(good, c.pk, choice="left")
        label(also_good, c.pk, choice="left")
        label(contrarian, c.pk, choice="right")
    trust = rater_trust()
    assert trust[good.pk] > trust[contrarian.pk]
    assert rater_weights() == {}  # by default every label weighs 1
    campaign_settings_update(campaign=campaign_default(), user=admin_user, weight_by_trust=True)
    assert rater_weights()[good.pk] == trust[good.pk]
    campaign_settings_update(campaign=campaign_default(), user=admin_user, weight_by_trust=False, min_trust=(trust[good.pk] + trust[contrarian.pk]) / 2)
    weights = rater_weights()
    assert weights[contrarian.pk] == 0.0 and weights[good.pk] == 1.0
    labels, _ = labels_for_training()
    (pair, _) = training_bridge.preference_pairs(labels, weights=weights)
    assert pair.weight == 1.0  # the contrarian's vote no longer dilutes the pair


def test_raw_export_carries_gold_trust_and_agreement(make_user, make_comparisons, admin_user):
    import json

    gold, c = make_comparisons(2, required_labels=2)
    comparison_mark_gold(comparison=gold, winner="a", user=admin_user)
    campaign_settings_update(campaign=campaign_default(), user=admin_user, gold_rate=0.0)  # keep the gold pair out of these leases
    caches_clear()
    r1, r2 = make_user(), make_user()
    for r, choice in ((r1, "left"), (r2, "right")):
        label(r, c.pk, choice=choice)
    rows = [json.loads(line) for line in b"".join(export_stream(fmt="raw", filters=ExportFilters())).splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["comparison_labels"] == 2 and row["agreement"] == 0.5
        assert row["is_gold"] is False and row["gold_correct"] is None and 0 < row["rater_trust"] <= 1
        assert row["adjudicated_winner"] is None and row["excluded"] is False


def test_a_paused_campaign_leases_nothing_new_but_a_held_lease_can_still_be_labelled(admin_user, make_user, make_comparisons):
    held, other = make_comparisons(2)
    first, second = make_user(), make_user()
    assert assignment_lease_next(campaign=campaign_default(), rater=first).comparison_id == held.pk
    campaign_settings_update(campaign=campaign_default(), user=admin_user, state="paused")
    caches_clear()  # the on-commit invalidation does not run inside the test's transaction
    assert assignment_lease_next(campaign=campaign_default(), rater=second) is None
    assert assignment_lease_next(campaign=campaign_default(), rater=first).comparison_id == held.pk  # the lease held before the pause
    label_record(campaign=campaign_default(), rater=first, comparison_id=held.pk, submission=LabelSubmission(choice="left"))
    assert assignment_lease_next(campaign=campaign_default(), rater=first) is None
    with pytest.raises(CampaignError, match="state must be one of active, paused, archived"):
        campaign_settings_update(campaign=campaign_default(), user=admin_user, state="closed")
    campaign_settings_update(campaign=campaign_default(), user=admin_user, state="active")
    caches_clear()
    assert assignment_lease_next(campaign=campaign_default(), rater=second).comparison_id == other.pk


def test_a_paused_campaign_generates_nothing(admin_user, settings, monkeypatch):
    from feedback_app.services import supply

    settings.SUPPLY_OPEN_TARGET = 5
    campaign_settings_update(campaign=campaign_default(), user=admin_user, state="paused")
    monkeypatch.setattr(supply, "policy_active_or_base", lambda: pytest.fail("a paused campaign must not generate"))
    assert supply.comparisons_supply() == 0


def test_the_campaign_s_criteria_and_flags_replace_the_settings_defaults(admin_user, settings):
    from feedback_app.services.labeling import InvalidSubmission

    settings.LABEL_CRITERIA, settings.LABEL_FLAGS = ["helpfulness", "honesty"], ["unsafe"]
    assert LabelSubmission.criterion_names() == ["helpfulness", "honesty"]
    campaign_settings_update(campaign=campaign_default(), user=admin_user, criteria=["accuracy", "tone"], flags=["off_topic"])
    caches_clear()  # the on-commit invalidation does not run inside the test's transaction
    assert (LabelSubmission.criterion_names(), LabelSubmission.flag_names()) == (["accuracy", "tone"], ["off_topic"])
    assert LabelSubmission(choice="left", criteria={"tone": "left"}, flags=("off_topic",)).criteria == {"tone": "left"}
    with pytest.raises(InvalidSubmission, match="unknown criteria"):
        LabelSubmission(choice="left", criteria={"helpfulness": "left"})
    for bad, message in ((["Tone"], "a name is a lowercase letter"), (["tone", "tone"], "each name once"),
                         ([f"c{i}" for i in range(9)], "at most 8"), ("tone", "a list of names")):
        with pytest.raises(CampaignError, match=message):
            campaign_settings_update(campaign=campaign_default(), user=admin_user, criteria=bad)
    campaign_settings_update(campaign=campaign_default(), user=admin_user, criteria=[])
    caches_clear()
    assert LabelSubmission.criterion_names() == ["helpfulness", "honesty"]  # empty: the defaults again
