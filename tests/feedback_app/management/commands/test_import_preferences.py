"""manage.py import_preferences: labelled pairs (TRL or HH JSONL, .gz too) in, every problem named by line."""

import gzip
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from feedback_app.models import PreferenceLabel, Prompt

pytestmark = pytest.mark.django_db


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


def test_import_preferences_reports_a_broken_gzip(tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"prompt": "p", "chosen": "a", "rejected": "b"}')[:-12])
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_preferences", str(path))
