"""manage.py export_preferences: every format and filter to a file, bad input a CommandError, no partial file left."""

import json

import pytest
from django.core.management import CommandError, call_command

from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


def test_export_round_trip_of_hh_data(tmp_path):
    """HH pairs imported then exported as TRL keep their prompt, chosen and rejected."""
    rows = [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant: Yes, here is how.",
             "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant: No."}]
    source = tmp_path / "hh.jsonl"
    source.write_text(json.dumps(rows[0]))
    call_command("import_preferences", str(source))
    out = tmp_path / "out.jsonl"
    call_command("export_preferences", str(out), "--format", "trl")
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["prompt"] == "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant:"
    assert (line["chosen"], line["rejected"]) == ("Yes, here is how.", "No.")


def test_export_command_formats_filters_and_bad_input(tmp_path, rater, make_comparisons):
    make_comparisons(2, tags=("billing",))
    for _ in range(2):
        a = assignment_lease_next(campaign=campaign_default(), rater=rater)
        label_record(campaign=campaign_default(), rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="left"))
    for fmt in ("trl", "raw", "csv", "parquet"):
        out = tmp_path / f"out.{fmt}"
        call_command("export_preferences", str(out), "--format", fmt, "--tag", "billing", "--from", "2000-01-01")
        assert out.stat().st_size > 0
    assert len((tmp_path / "out.raw").read_text().splitlines()) == 2
    with pytest.raises(CommandError, match="--from '2026-13-01' is not an ISO 8601 date"):
        call_command("export_preferences", str(tmp_path / "x"), "--from", "2026-13-01")
    with pytest.raises(CommandError, match=r"--tag: no tag 'biling' in the studio; --rater: no rater 'nobody' \(a username or a pseudonym\)"):
        call_command("export_preferences", str(tmp_path / "x"), "--tag", "biling", "--rater", "nobody")
    call_command("export_preferences", str(tmp_path / "upper.raw"), "--format", "raw", "--tag", "Billing")  # as an import stores it
    assert len((tmp_path / "upper.raw").read_text().splitlines()) == 2
    with pytest.raises(CommandError, match="cannot write"):
        call_command("export_preferences", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert not list(tmp_path.glob(".*partial"))


def test_export_sft_writes_the_rewrites_of_the_filtered_labels(tmp_path, make_user, make_comparisons):
    """--format sft: one {"prompt", "completion"} line per rewrite, with --rater applied."""
    make_comparisons(2)
    raters = [make_user(), make_user()]
    for rater, text in zip(raters, ("Rewrite one.", "Rewrite two.")):
        a = assignment_lease_next(campaign=campaign_default(), rater=rater)
        label_record(campaign=campaign_default(), rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="both_bad", edited_text=text))
    out = tmp_path / "sft.jsonl"
    call_command("export_preferences", str(out), "--format", "sft", "--rater", raters[1].username)
    (line,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(line) == {"prompt", "completion"} and line["completion"] == "Rewrite two." and line["prompt"].startswith("Where is my order")


def test_export_source_keeps_human_or_ai_labels(tmp_path, rater, make_comparisons, make_judge):
    """--source human|ai|all: raw rows of the chosen labels; trl lines say who decided them."""
    from feedback_app.models import PreferenceLabel

    human_one, ai_one = make_comparisons(2)
    a = assignment_lease_next(campaign=campaign_default(), rater=rater)
    label_record(campaign=campaign_default(), rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="left"))
    PreferenceLabel.objects.create(comparison=ai_one, judge_version=make_judge("judge-x").versions.get(), winner="a")
    for source, expected in (("human", {"human"}), ("ai", {"ai"}), ("all", {"human", "ai"})):
        out = tmp_path / f"{source}.jsonl"
        call_command("export_preferences", str(out), "--format", "raw", "--source", source)
        assert {json.loads(line)["label_source"] for line in out.read_text().splitlines()} == expected
    call_command("export_preferences", str(tmp_path / "trl.jsonl"), "--format", "trl", "--source", "ai")
    (line,) = [json.loads(x) for x in (tmp_path / "trl.jsonl").read_text().splitlines()]
    assert (line["comparison_id"], line["label_source"], line["judge"]) == (ai_one.pk, "ai", "judge-x")
    with pytest.raises(CommandError):
        call_command("export_preferences", str(tmp_path / "x"), "--source", "robots")


def test_export_to_a_reader_that_stops_early_ends_quietly(rater, make_comparisons, monkeypatch):
    """``export_preferences - | head -1``: the pipe its reader closed ends the export, with no traceback."""
    import io
    import os
    import sys

    make_comparisons(1)
    a = assignment_lease_next(campaign=campaign_default(), rater=rater)
    label_record(campaign=campaign_default(), rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="left"))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    with io.TextIOWrapper(open(write_end, "wb")) as closed_pipe:
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        call_command("export_preferences", "-", "--format", "raw")  # returns, instead of raising BrokenPipeError
        assert os.path.samefile(f"/proc/self/fd/{closed_pipe.fileno()}", os.devnull)  # what is left to flush goes nowhere
