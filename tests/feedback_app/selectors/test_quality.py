import pytest
from django.utils import timezone

from feedback_app.models import Comparison, PreferenceLabel, Prompt
from feedback_app.selectors.quality import agreement_summary, rater_quality, rater_trust
from feedback_app.selectors.review import comparison_get, labels_by_comparison, review_queue

pytestmark = pytest.mark.django_db


def comparison(short: str = "short", long: str = "a much longer reply") -> Comparison:
    prompt = Prompt.objects.create(text="q")
    a, b = prompt.responses.create(text=short), prompt.responses.create(text=long)
    return Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=3)


def test_biases_are_measured_and_flagged(make_user):
    lefty, careful = make_user(), make_user()
    for i in range(24):
        c = comparison()
        a_on_left = i % 2 == 0
        # lefty always picks the left side, fast; careful picks the shorter reply, slowly.
        PreferenceLabel.objects.create(comparison=c, rater=lefty, winner="a" if a_on_left else "b", a_on_left=a_on_left, time_on_task_ms=800)
        PreferenceLabel.objects.create(comparison=c, rater=careful, winner="a", a_on_left=a_on_left, time_on_task_ms=9000)
    Comparison.objects.update(label_count=2)  # as the labeling service keeps it
    quality = rater_quality()
    assert quality[lefty.pk]["left_share"] == 1.0 and quality[careful.pk]["left_share"] == 0.5
    assert quality[lefty.pk]["longer_share"] == 0.5 and quality[careful.pk]["longer_share"] == 0.0
    assert quality[lefty.pk]["median_time_ms"] == 800
    assert any("left side 100%" in w for w in quality[lefty.pk]["warnings"])
    assert any("median time on task 0.8 s" in w for w in quality[lefty.pk]["warnings"])
    assert quality[careful.pk]["warnings"] == []
    assert {k: round(v, 4) for k, v in rater_trust().items()} == {k: q["trust"] for k, q in quality.items()}


def test_agreement_summary_on_a_hand_worked_example(make_user):
    r1, r2, r3 = make_user(), make_user(), make_user()
    votes = [("a", "a", "a"), ("a", "b", "a"), ("tie", "tie", "b")]
    for triple in votes:
        c = comparison()
        for rater, winner in zip((r1, r2, r3), triple):
            PreferenceLabel.objects.create(comparison=c, rater=rater, winner=winner, strength=2)
    summary = agreement_summary()
    # Pairs per unit: 3 agreeing, 1 of 3, 1 of 3 → 5 of 9.
    assert summary["n_units"] == 3 and summary["percent_agreement"] == pytest.approx(5 / 9)
    assert summary["alpha_ordinal"] is not None and summary["alpha_nominal"] is not None


def test_review_queue_lists_flagged_and_disputed(make_user):
    """The queue reads the marks the labeling services keep (tested in services/test_labeling), newest first, unreviewed only."""
    flagged, disputed, calm, reviewed = comparison(), comparison(), comparison(), comparison()
    r1, r2 = make_user(), make_user()
    PreferenceLabel.objects.create(comparison=flagged, rater=r1, winner="a", flags=["private"])
    for c, (w1, w2) in ((disputed, ("a", "b")), (calm, ("a", "a")), (reviewed, ("a", "b"))):
        PreferenceLabel.objects.create(comparison=c, rater=r1, winner=w1)
        PreferenceLabel.objects.create(comparison=c, rater=r2, winner=w2)
    Comparison.objects.update(label_count=2)
    Comparison.objects.filter(pk=flagged.pk).update(flagged=True)
    Comparison.objects.filter(pk__in=[disputed.pk, reviewed.pk]).update(disputed=True)
    Comparison.objects.filter(pk=reviewed.pk).update(reviewed_at=timezone.now())
    queue = review_queue()
    assert [c.pk for c in queue["flagged"]] == [flagged.pk]
    assert [c.pk for c in queue["disputed"]] == [disputed.pk] and queue["votes"][disputed.pk] == ["a", "b"]


def test_labels_by_comparison_groups_labels_oldest_first(make_user):
    """Each asked-for comparison maps to its labels in the order given; others and unlabelled ones are absent."""
    first, second, other, unlabelled = comparison(), comparison(), comparison(), comparison()
    raters = [make_user() for _ in range(3)]
    early = PreferenceLabel.objects.create(comparison=first, rater=raters[0], winner="a")
    PreferenceLabel.objects.create(comparison=other, rater=raters[0], winner="b")
    late = PreferenceLabel.objects.create(comparison=first, rater=raters[1], winner="b")
    only = PreferenceLabel.objects.create(comparison=second, rater=raters[2], winner="tie")
    labels = labels_by_comparison(comparison_ids=[first.pk, second.pk, unlabelled.pk])
    assert {cid: [label.pk for label in group] for cid, group in labels.items()} == {first.pk: [early.pk, late.pk], second.pk: [only.pk]}
    assert labels[second.pk][0].rater.profile.pseudonym == raters[2].profile.pseudonym


def test_comparison_get_returns_the_comparison_or_none():
    c = comparison()
    assert comparison_get(comparison_id=c.pk) == c
    assert comparison_get(comparison_id=c.pk + 1) is None


def test_active_raters_are_those_who_labelled_or_leased_in_the_window(make_user, make_comparisons):
    from datetime import timedelta

    from django.utils import timezone

    from feedback_app.models import Assignment, PreferenceLabel
    from feedback_app.selectors.label_tally import active_rater_count

    labeller, leaser, both, idle = (make_user() for _ in range(4))
    first, second, third, fourth = make_comparisons(4)
    now = timezone.now()
    PreferenceLabel.objects.create(comparison=first, rater=labeller, winner="a")
    Assignment.objects.create(comparison=second, rater=leaser, a_on_left=True, leased_at=now, lease_expires_at=now + timedelta(minutes=5))
    PreferenceLabel.objects.create(comparison=third, rater=both, winner="b")
    Assignment.objects.create(comparison=third, rater=both, a_on_left=True, leased_at=now, lease_expires_at=now + timedelta(minutes=5))
    old = PreferenceLabel.objects.create(comparison=fourth, rater=idle, winner="a")
    PreferenceLabel.objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=1))
    PreferenceLabel.objects.create(comparison=fourth, winner="a")  # imported: no rater
    assert active_rater_count(minutes=10) == 3


def test_gold_candidates_are_the_newest_complete_comparisons_where_every_label_agrees_on_a_side(make_user):
    from feedback_app.selectors.review import gold_candidates_count

    r1, r2 = make_user(), make_user()
    for winners in (("a", "a"), ("b", "b"), ("a", "b"), ("tie", "tie"), ("a", "a"), ("a",)):
        c = comparison()
        for rater, winner in zip((r1, r2), winners):
            PreferenceLabel.objects.create(comparison=c, rater=rater, winner=winner)
        Comparison.objects.filter(pk=c.pk).update(label_count=len(winners), status="complete")
    Comparison.objects.filter(pk=c.pk).update(label_count=1)  # the last: one label is no agreement
    gold = Comparison.objects.order_by("id")[4]
    Comparison.objects.filter(pk=gold.pk).update(is_gold=True)
    assert gold_candidates_count() == 2  # (a, a) and (b, b); not the split, the ties, the gold pair or the single label
    assert gold_candidates_count(limit=1) == 1


def test_labels_of_listed_comparisons_are_read_from_the_list_not_through_the_campaign(make_user):
    """A close reads its comparisons' labels 2,000 ids at a time. Joined through the campaign's prompts, SQLite walked every prompt
    of the campaign for each read (45 s at 186,000 comparisons, holding the write lock that labels wait for)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from feedback_app.selectors.quality import rater_label_rows

    rater = make_user()
    comparisons = [comparison() for _ in range(3)]
    for c in comparisons:
        PreferenceLabel.objects.create(comparison=c, rater=rater, winner="a")
    with CaptureQueriesContext(connection) as reading:
        rows = rater_label_rows(campaign_id=1, comparison_ids=[c.pk for c in comparisons[:2]])
    assert sorted(row["comparison_id"] for row in rows) == sorted(c.pk for c in comparisons[:2])
    assert len(reading) == 1 and "feedback_app_prompt" not in reading[0]["sql"]
