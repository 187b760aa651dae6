"""manage.py import_prompts: prompts and comparisons in; hostile or bad lines a CommandError naming the line, never a traceback."""

import json

import pytest
from django.core.management import CommandError, call_command

from feedback_app.models import Comparison, Prompt

pytestmark = pytest.mark.django_db

BAD_LINES = {
    "deep": ('{"prompt": "p", "metadata": {"x": ' + "[" * 5000 + "]" * 5000 + "}}", "nested more than 64 levels"),
    "nan": ('{"prompt": "p", "metadata": {"x": NaN}}', "NaN"),
    "infinite": ('{"prompt": "p", "metadata": {"x": 1e400}}', "out of range"),
    "5000 digits": ('{"prompt": "p", "metadata": {"x": ' + "9" * 5000 + "}}", "digits"),
    "lone surrogate": ('{"prompt": "\\ud800"}', "lone surrogate"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_hostile_line_is_a_command_error_naming_it(tmp_path, case):
    line, expected = BAD_LINES[case]
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "fine"}\n' + line + "\n")
    with pytest.raises(CommandError) as caught:
        call_command("import_prompts", str(path))
    assert "line 2" in str(caught.value) and expected in str(caught.value)
    assert not Prompt.objects.exists()


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


def test_import_prompts_skip_invalid(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok", "responses": ["a", "b"]}\n{"prompt": "x", "metadata": {"n": NaN}}\n')
    call_command("import_prompts", str(path), "--skip-invalid")
    out = capsys.readouterr()
    assert "Imported 1 prompts" in out.out and out.err.strip() == "skipped line 2, field 'metadata.n': NaN is not a number JSON allows; use a finite number or null"
    assert Comparison.objects.filter(status="open").count() == 1


def test_import_prompts_reads_a_file_of_another_shape_through_columns(tmp_path, capsys):
    path = tmp_path / "support.csv"
    path.write_text("instruction,intent,response\nWhere is my parcel?,track_order,On its way.\n")
    with pytest.raises(CommandError, match="--columns: 'prmpt' is no field of a prompts file"):
        call_command("import_prompts", str(path), "--columns", "prmpt=instruction")
    with pytest.raises(CommandError, match="give a column mapping"):
        call_command("import_prompts", str(path))
    call_command("import_prompts", str(path), "--columns", "prompt=instruction; tags=intent")
    assert "Left out the columns the mapping does not name: response." in capsys.readouterr().out
    assert list(Prompt.objects.values_list("text", "tags__name")) == [("Where is my parcel?", "track_order")]
