import pytest
from django.core.exceptions import ImproperlyConfigured

from feedback_app.settings.env import BASE_DIR, env_bool, env_float, env_int, env_list


def test_unset_or_empty_variables_give_the_default(monkeypatch):
    """A variable that is absent or empty reads as the default (a list only when absent)."""
    monkeypatch.delenv("STUDIO_TEST_VAR", raising=False)
    assert env_bool("STUDIO_TEST_VAR", True) is True and env_int("STUDIO_TEST_VAR", 7) == 7
    assert env_float("STUDIO_TEST_VAR", 0.5) == 0.5 and env_list("STUDIO_TEST_VAR", ["a"]) == ["a"]
    monkeypatch.setenv("STUDIO_TEST_VAR", "")
    assert env_int("STUDIO_TEST_VAR", 7) == 7 and env_list("STUDIO_TEST_VAR", ["a"]) == []


def test_values_are_read_in_their_type(monkeypatch):
    """Booleans take 1/0, true/false, yes/no, on/off; lists are comma-separated and trimmed."""
    for text, value in (("1", True), ("off", False), ("Yes", True), ("FALSE", False)):
        monkeypatch.setenv("STUDIO_TEST_VAR", text)
        assert env_bool("STUDIO_TEST_VAR", not value) is value
    monkeypatch.setenv("STUDIO_TEST_VAR", " a, b ,,c ")
    assert env_list("STUDIO_TEST_VAR", []) == ["a", "b", "c"]
    monkeypatch.setenv("STUDIO_TEST_VAR", "12")
    assert env_int("STUDIO_TEST_VAR", 0, 10) == 12 and env_float("STUDIO_TEST_VAR", 0.0) == 12.0


@pytest.mark.parametrize("reader, text, message", [
    (lambda: env_bool("STUDIO_TEST_VAR", False), "maybe", "STUDIO_TEST_VAR must be a boolean"),
    (lambda: env_int("STUDIO_TEST_VAR", 0), "1.5", "STUDIO_TEST_VAR must be an integer, got '1.5'"),
    (lambda: env_int("STUDIO_TEST_VAR", 0, 10), "3", "STUDIO_TEST_VAR must be at least 10, got 3"),
    (lambda: env_float("STUDIO_TEST_VAR", 0.0), "half", "STUDIO_TEST_VAR must be a number, got 'half'"),
])
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch, reader, text, message):
    monkeypatch.setenv("STUDIO_TEST_VAR", text)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader()


def test_base_dir_is_the_checkout():
    """BASE_DIR is the folder that holds manage.py, wherever the settings package sits."""
    assert (BASE_DIR / "manage.py").exists()
