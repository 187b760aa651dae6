"""The export formats as written: TRL pairs (with those rewrites imply), raw rows, CSV without formulas, typed parquet, SFT rewrites."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.models import Assignment, Comparison, PreferenceLabel
from feedback_app.selectors.exports import RAW_COLUMNS, ExportFilters
from feedback_app.services.exports import csv_cell, export_stream
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


def export(fmt: str, **filters) -> bytes:
    return b"".join(export_stream(fmt=fmt, filters=ExportFilters(**filters)))


@pytest.fixture
def labelled(make_user, make_comparisons):
    """Three comparisons: one decided by 2 of 3 raters, one tie, one flagged and tagged."""
    c1, c2, c3 = make_comparisons(2, required_labels=3) + make_comparisons(1, tags=("billing",))
    r1, r2, r3 = make_user(), make_user(), make_user()
    for r, choice in ((r1, "left"), (r2, "left"), (r3, "right")):
        assignment = assignment_lease_next(campaign=campaign_default(), rater=r)
        assert assignment.comparison_id == c1.pk
        Assignment.objects.filter(pk=assignment.pk).update(a_on_left=True)  # "left" is response A for all three
        label_record(campaign=campaign_default(), rater=r, comparison_id=c1.pk, submission=LabelSubmission(choice=choice, strength=3))
    for r in (r1, r2, r3):
        assignment_lease_next(campaign=campaign_default(), rater=r)
        label_record(campaign=campaign_default(), rater=r, comparison_id=c2.pk, submission=LabelSubmission(choice="tie"))
    assignment_lease_next(campaign=campaign_default(), rater=r1)
    label_record(campaign=campaign_default(), rater=r1, comparison_id=c3.pk, submission=LabelSubmission(choice="right", flags=("unsafe",), criteria={"honesty": "left"}))
    return c1, c2, c3, (r1, r2, r3)


def test_trl_export_has_one_line_per_decided_pair(labelled):
    c1, c2, c3, _ = labelled
    lines = [json.loads(line) for line in export("trl").splitlines()]
    assert [line["comparison_id"] for line in lines] == [c1.pk, c3.pk]  # the tie decides nothing
    first = lines[0]
    assert set(first) >= {"prompt", "chosen", "rejected", "margin", "n_labels", "agreement", "tags"}
    assert first["n_labels"] == 3 and first["agreement"] == pytest.approx(2 / 3, abs=1e-4) and first["margin"] == 1.0
    assert sorted(PreferenceLabel.objects.filter(comparison=c1).values_list("winner", flat=True)) == ["a", "a", "b"]
    assert (first["chosen"], first["rejected"]) == (c1.response_a.text, c1.response_b.text)


def test_trl_export_loads_with_datasets(labelled, tmp_path):
    import datasets

    path = tmp_path / "trl.jsonl"
    path.write_bytes(export("trl"))
    dataset = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert dataset.num_rows == 2
    assert {"prompt", "chosen", "rejected", "margin"} <= set(dataset.column_names)


def test_raw_export_has_every_label_with_its_provenance(labelled):
    c1, c2, c3, (r1, _, _) = labelled
    rows = [json.loads(line) for line in export("raw").splitlines()]
    assert len(rows) == 7
    row = next(r for r in rows if r["comparison_id"] == c3.pk)
    assert row["rater"] == r1.profile.pseudonym and r1.username not in json.dumps(row)
    assert row["flags"] == ["unsafe"] and row["displayed_order"] in ("a_left", "b_left")
    assert row["choice"] == "right" and row["winner"] == ("b" if row["displayed_order"] == "a_left" else "a")
    assert row["criteria"] == {"honesty": "a" if row["displayed_order"] == "a_left" else "b"}
    assert row["time_on_task_ms"] is not None and row["leased_at"] and row["labelled_at"]
    assert row["tags"] == ["billing"] and "policy_version" in row and "reward_model_version" in row
    assert set(row) == set(RAW_COLUMNS)


def test_filters(labelled):
    c1, c2, c3, (r1, r2, _) = labelled
    def count(**filters):
        return len(export("raw", **filters).splitlines())
    assert count(rater=r2.username) == 2
    assert count(rater=r2.profile.pseudonym) == 2
    assert count(tags=("billing",)) == 1
    assert count(exclude_flagged=True) == 6
    assert count(date_from=timezone.now() + timedelta(minutes=1)) == 0
    assert count(date_to=timezone.now() + timedelta(minutes=1)) == 7


def test_csv_and_parquet_hold_the_raw_rows(labelled):
    import pyarrow.parquet as pq

    rows = list(csv.DictReader(io.StringIO(export("csv").decode())))
    assert len(rows) == 7 and list(rows[0]) == RAW_COLUMNS
    table = pq.read_table(io.BytesIO(export("parquet")))
    assert table.num_rows == 7 and table.column_names == RAW_COLUMNS
    assert sorted(table.column("label_id").to_pylist()) == sorted(int(r["label_id"]) for r in rows)


def test_exports_of_nothing_are_valid_files(db):
    import pyarrow.parquet as pq

    assert export("trl") == b"" and export("raw") == b""
    assert export("csv").decode().strip() == ",".join(RAW_COLUMNS)
    assert pq.read_table(io.BytesIO(export("parquet"))).num_rows == 0


def test_unknown_format_is_refused(db):
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export_stream(fmt="xml", filters=ExportFilters())


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+1", "-5", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cell_quotes_formula_looking_text(text):
    """A text cell that a spreadsheet would run as a formula starts with a quote."""
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "", " =not first", "{\"a\": 1}", 5, -5, -0.5, True, None])
def test_csv_cell_keeps_other_values(value):
    """Numbers, booleans, empty cells and ordinary text are untouched."""
    assert csv_cell(value) == value


def test_csv_export_neutralises_formulas_and_parquet_keeps_them_raw(labelled):
    """The rationale "=1+1" is quoted in the CSV, raw in parquet; numbers stay numbers in both."""
    import pyarrow.parquet as pq

    label = PreferenceLabel.objects.order_by("id").first()
    PreferenceLabel.objects.filter(pk=label.pk).update(rationale="=1+1", edited_text="-5")
    rows = {int(r["label_id"]): r for r in csv.DictReader(io.StringIO(export("csv").decode()))}
    assert rows[label.pk]["rationale"] == "'=1+1" and rows[label.pk]["edited_text"] == "'-5"
    assert rows[label.pk]["strength"] == str(label.strength)
    table = pq.read_table(io.BytesIO(export("parquet"))).to_pylist()
    raw = next(r for r in table if r["label_id"] == label.pk)
    assert raw["rationale"] == "=1+1" and raw["edited_text"] == "-5"


def test_every_table_format_says_which_reply_was_cut_off(labelled):
    """raw and parquet keep the truncated flags as booleans; csv writes them as text, after the columns before them, before the rewrite's."""
    import pyarrow.parquet as pq

    c1 = labelled[0]
    c1.response_a.truncated = True
    c1.response_a.save()
    raw = [json.loads(line) for line in export("raw").decode().splitlines()]
    assert {(r["comparison_id"], r["truncated_a"], r["truncated_b"]) for r in raw} == {
        (c1.pk, True, False), (labelled[1].pk, False, False), (labelled[2].pk, False, False)}
    rows = list(csv.DictReader(io.StringIO(export("csv").decode())))
    assert list(rows[0])[-11:-9] == ["truncated_a", "truncated_b"]
    assert {(int(r["comparison_id"]), r["truncated_a"]) for r in rows} == {(c1.pk, "True"), (labelled[1].pk, "False"), (labelled[2].pk, "False")}
    table = pq.read_table(io.BytesIO(export("parquet"))).to_pylist()
    assert {(r["comparison_id"], r["truncated_a"], r["truncated_b"]) for r in table} == {(r["comparison_id"], r["truncated_a"], r["truncated_b"]) for r in raw}


def _rewrite(make_comparisons, rater, *, choice: str, text: str, edited_from: str = "", tags=()):
    (comparison,) = make_comparisons(1, tags=tags)
    assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
    assert assignment.comparison_id == comparison.pk
    Assignment.objects.filter(pk=assignment.pk).update(a_on_left=True)
    label, _ = label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk,
                            submission=LabelSubmission(choice=choice, edited_text=text, edited_from=edited_from))
    return comparison, label


def test_trl_export_adds_the_pairs_a_rewrite_implies_marked_so(labelled, make_comparisons):
    """A tie decides no pair of its own, but its rewrite adds two, rewrite over each reply, marked implied: rewrite."""
    c1, _, c3, (r1, _, _) = labelled
    c4, label = _rewrite(make_comparisons, r1, choice="tie", text="It ships Monday; we will email you.", edited_from="left")
    lines = [json.loads(line) for line in export("trl").splitlines()]
    assert [(line["comparison_id"], line["implied"]) for line in lines] == [(c1.pk, None), (c3.pk, None), (c4.pk, "rewrite"), (c4.pk, "rewrite")]
    implied = [line for line in lines if line["implied"]]
    assert {line["chosen"] for line in implied} == {label.rewrite.text} and all(line["label_id"] == label.pk for line in implied)
    assert {line["rejected"] for line in implied} == {c4.response_a.text, c4.response_b.text}
    assert lines[0]["label_id"] is None


def test_raw_export_shows_the_rewrite_and_its_size_of_change_in_every_table(labelled, make_comparisons):
    """raw, csv and parquet carry the rewrite, its start and its diff length in the last columns."""
    import pyarrow.parquet as pq

    _, _, _, (r1, _, _) = labelled
    c4, label = _rewrite(make_comparisons, r1, choice="left", text="It ships tomorrow (order 0). Tracking follows.")
    raw = {row["label_id"]: row for row in map(json.loads, export("raw").splitlines())}
    assert (raw[label.pk]["rewrite"], raw[label.pk]["rewrite_from"], raw[label.pk]["rewrite_diff_chars"]) == (
        label.rewrite.text, "a", len(" Tracking follows."))
    assert sum(1 for row in raw.values() if row["rewrite"] is None) == len(raw) - 1
    rows = list(csv.DictReader(io.StringIO(export("csv").decode())))
    assert list(rows[0])[-9:-5] == ["rewrite_id", "rewrite", "rewrite_from", "rewrite_diff_chars"]
    assert [(r["rewrite_from"], r["rewrite_diff_chars"]) for r in rows if r["rewrite"]] == [("a", str(len(" Tracking follows.")))]
    table = pq.read_table(io.BytesIO(export("parquet"))).to_pylist()
    assert [(r["rewrite_id"], r["rewrite_diff_chars"]) for r in table if r["rewrite_id"]] == [(label.rewrite_id, len(" Tracking follows."))]


def test_sft_export_writes_each_rewrite_as_prompt_and_completion_under_the_filters(labelled, make_comparisons, make_user):
    """One {"prompt", "completion"} line per rewrite; rater, tag, flag and date filters apply as to every format."""
    _, _, _, (r1, r2, _) = labelled
    _, first = _rewrite(make_comparisons, r1, choice="left", text="First rewrite.", tags=("billing",))
    c5, second = _rewrite(make_comparisons, r2, choice="both_bad", text="Second rewrite.")
    lines = [json.loads(line) for line in export("sft").splitlines()]
    assert [set(line) for line in lines] == [{"prompt", "completion"}] * 2
    assert [line["completion"] for line in lines] == ["First rewrite.", "Second rewrite."]
    assert lines[1]["prompt"] == c5.prompt.text

    def completions(**filters):
        return [json.loads(line)["completion"] for line in export("sft", **filters).splitlines()]

    assert completions(rater=r2.username) == ["Second rewrite."]
    assert completions(tags=("billing",)) == ["First rewrite."]
    PreferenceLabel.objects.filter(pk=second.pk).update(flags=["unsafe"])
    assert completions(exclude_flagged=True) == ["First rewrite."]
    assert completions(date_from=timezone.now() + timedelta(days=1)) == []
    Comparison.objects.filter(pk=c5.pk).update(excluded=True)  # an admin left it out of training
    assert completions() == ["First rewrite."]
