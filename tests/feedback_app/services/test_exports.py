"""The four export formats as written: TRL pairs, raw rows, CSV without formulas, typed parquet."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.models import Assignment, PreferenceLabel
from feedback_app.selectors.exports import RAW_COLUMNS, ExportFilters
from feedback_app.services.exports import csv_cell, export_stream
from feedback_app.services.labeling import LabelSubmission, assignment_lease_next, label_record

pytestmark = pytest.mark.django_db


def export(fmt: str, **filters) -> bytes:
    return b"".join(export_stream(fmt=fmt, filters=ExportFilters(**filters)))


@pytest.fixture
def labelled(make_user, make_comparisons):
    """Three comparisons: one decided by 2 of 3 raters, one tie, one flagged and tagged."""
    c1, c2, c3 = make_comparisons(2, required_labels=3) + make_comparisons(1, tags=("billing",))
    r1, r2, r3 = make_user(), make_user(), make_user()
    for r, choice in ((r1, "left"), (r2, "left"), (r3, "right")):
        assignment = assignment_lease_next(rater=r)
        assert assignment.comparison_id == c1.pk
        Assignment.objects.filter(pk=assignment.pk).update(a_on_left=True)  # "left" is response A for all three
        label_record(rater=r, comparison_id=c1.pk, submission=LabelSubmission(choice=choice, strength=3))
    for r in (r1, r2, r3):
        assignment_lease_next(rater=r)
        label_record(rater=r, comparison_id=c2.pk, submission=LabelSubmission(choice="tie"))
    assignment_lease_next(rater=r1)
    label_record(rater=r1, comparison_id=c3.pk, submission=LabelSubmission(choice="right", flags=("unsafe",), criteria={"honesty": "left"}))
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
    """raw and parquet keep the truncated flags as booleans; csv writes them as text, last in the row."""
    import pyarrow.parquet as pq

    c1 = labelled[0]
    c1.response_a.truncated = True
    c1.response_a.save()
    raw = [json.loads(line) for line in export("raw").decode().splitlines()]
    assert {(r["comparison_id"], r["truncated_a"], r["truncated_b"]) for r in raw} == {
        (c1.pk, True, False), (labelled[1].pk, False, False), (labelled[2].pk, False, False)}
    rows = list(csv.DictReader(io.StringIO(export("csv").decode())))
    assert list(rows[0])[-2:] == ["truncated_a", "truncated_b"]
    assert {(int(r["comparison_id"]), r["truncated_a"]) for r in rows} == {(c1.pk, "True"), (labelled[1].pk, "False"), (labelled[2].pk, "False")}
    table = pq.read_table(io.BytesIO(export("parquet"))).to_pylist()
    assert {(r["comparison_id"], r["truncated_a"], r["truncated_b"]) for r in table} == {(r["comparison_id"], r["truncated_a"], r["truncated_b"]) for r in raw}
