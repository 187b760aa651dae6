import gzip
import hashlib
import json
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from feedback_app.models import Comparison, PreferenceLabel, Profile, Prompt, Role
from feedback_app.services.labeling import LabelSubmission, assignment_lease_next, label_record

pytestmark = pytest.mark.django_db


def test_add_user_prints_password_and_token(capsys):
    call_command("add_user", "carol", "--role", "researcher")
    out = capsys.readouterr().out
    assert "Created researcher 'carol'" in out and "password: " in out and "API token: " in out
    profile = Profile.objects.get(user__username="carol")
    assert profile.role == Role.RESEARCHER and profile.user.is_staff and not profile.user.is_superuser
    key = re.search(r"API token: (\w+)", out).group(1)
    assert profile.user.api_tokens.get().digest == hashlib.sha256(key.encode()).hexdigest()  # stored only hashed
    with pytest.raises(CommandError, match="exists already"):
        call_command("add_user", "carol", "--role", "rater")


def test_import_prompts_command(tmp_path, capsys):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "Refund?", "responses": ["Yes.", "No."]}) + "\n" + json.dumps({"prompt": "Hours?"}) + "\n")
    call_command("import_prompts", str(path), "--required-labels", "3")
    assert "Imported 2 prompts, 2 responses and 1 comparisons" in capsys.readouterr().out
    assert Comparison.objects.get().required_labels == 3
    with pytest.raises(CommandError, match="imported already"):
        call_command("import_prompts", str(path))


def test_import_prompts_reports_bad_lines_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "x", "responses": ["one"]}\n')
    with pytest.raises(CommandError, match="line 2, field 'responses': a comparison needs at least 2 responses"):
        call_command("import_prompts", str(path))
    assert not Prompt.objects.exists()
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_prompts", str(tmp_path / "missing.jsonl"))


def test_import_preferences_hh_gz(tmp_path, capsys):
    rows = [{"chosen": f"\n\nHuman: Q{i}?\n\nAssistant: Good {i}.", "rejected": f"\n\nHuman: Q{i}?\n\nAssistant: Bad {i}."} for i in range(5)]
    path = tmp_path / "hh.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    call_command("import_preferences", str(path))
    assert "Imported 5 labelled pairs" in capsys.readouterr().out
    assert PreferenceLabel.objects.count() == 5 and Prompt.objects.filter(text="Q3?").exists()


HARMLESS_TEST = Path(__file__).resolve().parents[4] / "../shared/data/hh-rlhf/harmless-base-test.jsonl.gz"


@pytest.mark.skipif(not HARMLESS_TEST.exists(), reason="the shared HH data is not on this machine")
def test_import_preferences_takes_the_real_harmless_split_as_it_is(tmp_path, capsys):
    """Its 4 pairs whose preferred reply is empty import too, and export as empty strings."""
    call_command("import_preferences", str(HARMLESS_TEST))
    out = capsys.readouterr()
    assert "Imported 2312 labelled pairs" in out.out and "skipped" not in out.err
    export = tmp_path / "out.jsonl"
    call_command("export_preferences", str(export), "--format", "trl")
    lines = [json.loads(x) for x in export.read_text().splitlines()]
    assert len(lines) == 2312 and sum(1 for line in lines if line["chosen"] == "") == 4


def test_import_preferences_skip_invalid_lists_every_skipped_line(tmp_path, capsys):
    rows = [{"prompt": "q1", "chosen": "same", "rejected": "same"}, {"prompt": "q2", "chosen": "yes", "rejected": "no"},
            {"chosen": "\n\nHuman: Q?\n\nAssistant: A.", "rejected": "\n\nHuman: Q?\n\nAssistant: A."}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(CommandError, match="nothing was imported. 2 problem") as info:
        call_command("import_preferences", str(path))
    assert "line 1, field 'rejected': the same text as chosen" in str(info.value) and "line 3, field 'rejected'" in str(info.value)
    assert not Prompt.objects.exists()
    call_command("import_preferences", str(path), "--skip-invalid")
    out = capsys.readouterr()
    assert "Imported 1 labelled pairs" in out.out and "Skipped 2 invalid line(s)" in out.out
    assert out.err.splitlines() == ["skipped line 1, field 'rejected': the same text as chosen",
                                    "skipped line 3, field 'rejected': the same text as chosen"]
    assert PreferenceLabel.objects.count() == 1


def test_import_prompts_skip_invalid(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok", "responses": ["a", "b"]}\n{"prompt": "x", "metadata": {"n": NaN}}\n')
    call_command("import_prompts", str(path), "--skip-invalid")
    out = capsys.readouterr()
    assert "Imported 1 prompts" in out.out and out.err.strip() == "skipped line 2, field 'metadata.n': NaN is not a number JSON allows; use a finite number or null"
    assert Comparison.objects.filter(status="open").count() == 1


def test_import_preferences_reports_a_broken_gzip(tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"prompt": "p", "chosen": "a", "rejected": "b"}')[:-12])
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_preferences", str(path))


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
        a = assignment_lease_next(rater=rater)
        label_record(rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="left"))
    for fmt in ("trl", "raw", "csv", "parquet"):
        out = tmp_path / f"out.{fmt}"
        call_command("export_preferences", str(out), "--format", fmt, "--tag", "billing", "--from", "2000-01-01")
        assert out.stat().st_size > 0
    assert len((tmp_path / "out.raw").read_text().splitlines()) == 2
    with pytest.raises(CommandError, match="--from '2026-13-01' is not an ISO 8601 date"):
        call_command("export_preferences", str(tmp_path / "x"), "--from", "2026-13-01")
    with pytest.raises(CommandError, match="cannot write"):
        call_command("export_preferences", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert not list(tmp_path.glob(".*partial"))


def test_seed_demo_runs_once(capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    assert first.count("password: ") == 3 and "Imported the demo" in first
    n = Comparison.objects.count()
    assert n >= 36
    call_command("seed_demo")
    assert capsys.readouterr().out == "" and Comparison.objects.count() == n
