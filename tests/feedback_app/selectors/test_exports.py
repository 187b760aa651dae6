"""What an export reads: the filters every caller builds the same way, the labels they select, the file name."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from feedback_app.models import Assignment
from feedback_app.selectors.exports import RAW_COLUMNS, ExportFilters, export_filename, labels_for_export, raw_row
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default


def test_from_query_splits_comma_separated_tags_and_strips_the_rater():
    """A form's "a, b,," and " bob " become ("a", "b") and "bob"; the dates and flag pass through."""
    start = datetime(2026, 1, 2, tzinfo=dt_timezone.utc)
    filters = ExportFilters.from_query(date_from=start, date_to=None, rater=" bob ", tags="billing, refunds,, ", exclude_flagged=True)
    assert filters == ExportFilters(date_from=start, rater="bob", tags=("billing", "refunds"), exclude_flagged=True)


def test_from_query_takes_a_sequence_of_tags_as_the_command_line_gives_them():
    """Repeated --tag options: each one a tag name, blanks dropped."""
    assert ExportFilters.from_query(tags=["billing", " refunds", ""]).tags == ("billing", "refunds")
    assert ExportFilters.from_query() == ExportFilters()


def test_export_filename_names_the_format_the_moment_and_the_extension():
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt_timezone.utc)
    assert [export_filename(fmt=fmt, now=now) for fmt in ("trl", "raw", "csv", "parquet")] == [
        "preferences-trl-20260304-050607.jsonl", "preferences-raw-20260304-050607.jsonl",
        "preferences-csv-20260304-050607.csv", "preferences-parquet-20260304-050607.parquet",
    ]


@pytest.fixture
def two_labels(make_user, make_comparisons):
    """Two raters agree on a plain comparison; the second also flags a tagged one."""
    plain, tagged = make_comparisons(1, required_labels=2) + make_comparisons(1, tags=("billing",))
    first, second = make_user(), make_user()
    for rater, comparison, flags in ((first, plain, ()), (second, plain, ()), (second, tagged, ("unsafe",))):
        assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
        assert assignment.comparison_id == comparison.pk
        Assignment.objects.filter(pk=assignment.pk).update(a_on_left=True)
        label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left", flags=flags))
    return plain, tagged, first, second


@pytest.mark.django_db
def test_labels_for_export_narrow_by_every_filter(two_labels):
    plain, tagged, first, second = two_labels

    def ids(**filters):
        return sorted(labels_for_export(filters=ExportFilters(**filters)).values_list("comparison_id", "rater_id"))

    assert ids() == sorted([(plain.pk, first.pk), (plain.pk, second.pk), (tagged.pk, second.pk)])
    assert ids(rater=first.username) == ids(rater=first.profile.pseudonym) == [(plain.pk, first.pk)]
    assert ids(tags=("billing",)) == [(tagged.pk, second.pk)]
    assert ids(exclude_flagged=True) == sorted([(plain.pk, first.pk), (plain.pk, second.pk)])
    assert ids(date_from=timezone.now() + timedelta(minutes=1)) == []


@pytest.mark.django_db
def test_raw_row_has_every_column_and_the_agreement_of_its_comparison(two_labels):
    plain, _, first, _ = two_labels
    label = labels_for_export(filters=ExportFilters()).get(comparison=plain, rater=first)
    row = raw_row(label, trust={first.pk: 0.9})
    assert list(row) == RAW_COLUMNS
    assert (row["rater"], row["winner"], row["choice"], row["displayed_order"]) == (first.profile.pseudonym, "a", "left", "a_left")
    assert (row["comparison_labels"], row["agreement"], row["rater_trust"], row["flags"]) == (2, 1.0, 0.9, [])


@pytest.mark.django_db
def test_raw_row_ends_with_whether_each_reply_was_cut_off(two_labels):
    """truncated_a and truncated_b come after the columns before them, which keep their places; the rewrite's follow, then who
    gave the label."""
    plain, _, first, _ = two_labels
    plain.response_b.truncated = True
    plain.response_b.save()
    row = raw_row(labels_for_export(filters=ExportFilters()).get(comparison=plain, rater=first))
    assert RAW_COLUMNS[-11:] == ["truncated_a", "truncated_b", "rewrite_id", "rewrite", "rewrite_from", "rewrite_diff_chars",
                                 "label_source", "judge", "judge_version", "policy_mode", "guidelines_version"]
    assert (row["truncated_a"], row["truncated_b"], row["policy_mode"]) == (False, True, None)


@pytest.mark.django_db
def test_raw_row_of_an_arena_comparison_names_its_serving_mode(two_labels):
    """The mode the arena's policy side answered in (rerank or sample) reaches the raw export, before the guidelines' version."""
    plain, _, first, _ = two_labels
    plain.kind, plain.policy_mode = "arena", "rerank"
    plain.save()
    row = raw_row(labels_for_export(filters=ExportFilters()).get(comparison=plain, rater=first))
    assert list(row)[-2:] == ["policy_mode", "guidelines_version"] and row["policy_mode"] == "rerank"



@pytest.mark.parametrize(("original", "rewrite", "size"), [
    ("It ships tomorrow.", "It ships tomorrow.", 0),
    ("", "It ships Monday.", 16),  # from scratch: every character is new
    ("It ships tomorrow.", "It ships on Monday.", 13),
    ("Please wait.", "Please wait. We will email you.", 19),
    ("Sorry, no refunds.", "No refunds.", 9),  # "Sorry, n" out, "N" in
])
def test_rewrite_diff_chars_counts_the_characters_inserted_and_deleted(original, rewrite, size):
    from feedback_app.selectors.exports import rewrite_diff_chars

    assert rewrite_diff_chars(original, rewrite) == size


def test_rewrite_diff_chars_stays_fast_on_long_unrelated_texts():
    """Two unrelated 20,000-character texts take difflib's heuristic, not its quadratic search."""
    import random
    import time

    from feedback_app.selectors.exports import rewrite_diff_chars

    rng = random.Random(0)
    words = "the order ships tomorrow and you will get an email with tracking".split()
    a, b = (" ".join(rng.choice(words) for _ in range(3000)) for _ in range(2))
    started = time.perf_counter()
    assert 0 < rewrite_diff_chars(a, b) <= len(a) + len(b)
    assert time.perf_counter() - started < 5


@pytest.mark.django_db
def test_raw_row_shows_the_rewrite_its_start_and_its_size_of_change(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
    Assignment.objects.filter(pk=assignment.pk).update(a_on_left=False)  # left is B
    label, _ = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(
        choice="left", edited_text=comparison.response_b.text + " We will email you."))
    row = raw_row(labels_for_export(filters=ExportFilters()).get())
    assert (row["rewrite_id"], row["rewrite_from"], row["rewrite_diff_chars"]) == (label.rewrite_id, "b", len(" We will email you."))
    assert row["rewrite"] == label.rewrite.text


@pytest.mark.django_db
def test_the_label_source_filter_and_columns_tell_people_from_judges(two_labels, make_judge):
    """--source human keeps raters' and imported labels, ai keeps the judges'; an AI label's row names its judge and version."""
    from feedback_app.models import PreferenceLabel

    plain, tagged, first, second = two_labels
    judge = make_judge("remote-1")
    ai = PreferenceLabel.objects.create(comparison=tagged, judge_version=judge.versions.get(), winner="b")
    imported = PreferenceLabel.objects.create(comparison=plain, winner="a")

    def ids(source):
        return set(labels_for_export(filters=ExportFilters(label_source=source)).values_list("pk", flat=True))

    assert ids("ai") == {ai.pk}
    assert ids("human") == set(PreferenceLabel.objects.exclude(pk=ai.pk).values_list("pk", flat=True)) and imported.pk in ids("human")
    assert ids("all") == set(PreferenceLabel.objects.values_list("pk", flat=True))
    row = raw_row(labels_for_export(filters=ExportFilters()).get(pk=ai.pk))
    assert (row["label_source"], row["judge"], row["judge_version"], row["rater"], row["rater_trust"]) == ("ai", "remote-1", "1", "ai:remote-1", None)
    human = raw_row(labels_for_export(filters=ExportFilters()).get(comparison=plain, rater=first))
    assert (human["label_source"], human["judge"], human["judge_version"]) == ("human", None, None)
    with pytest.raises(ValueError):
        ExportFilters.from_query(label_source="robots")
