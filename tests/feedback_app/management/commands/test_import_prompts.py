"""The import command on hostile files: a CommandError naming the line and problem, never a traceback."""

import pytest
from django.core.management import CommandError, call_command

from feedback_app.models import Prompt

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
