import pytest

from feedback_app.services.json_input import JSONInputError, json_loads_strict, json_value_check


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[" * 1000 + "]" * 1000, "nested more than 64 levels"),
        ('{"metadata": {"score": NaN}}', "metadata.score: NaN"),
        ('{"metadata": {"score": Infinity}}', "metadata.score: Infinity"),
        ('{"metadata": {"score": -Infinity}}', "metadata.score: -Infinity"),
        ('{"metadata": {"big": 1e400}}', "metadata.big: the number 1e400 is out of range"),
        ('{"id": ' + "9" * 5000 + "}", "id: the number 99999999999999999999... has 5,000 digits"),
        ('{"id": -' + "9" * 1001 + "}", "id: the number"),
        ('{"prompt": "\\ud800"}', "prompt: holds a lone surrogate"),
        ('{"tags": ["ok", "\\udfff"]}', "tags[1]: holds a lone surrogate"),
        ('{"\\ud83d": 1}', "\\ud83d: holds a lone surrogate"),
        ('{"metadata": {"note": "a\\u0000b"}}', "metadata.note: holds a NUL character"),
        ('{"metadata": {"a\\u0000": 1}}', "metadata.a\\u0000: holds a NUL character"),
        ("{", "Expecting property name"),
    ],
)
def test_refused_json_names_the_place(text, names):
    """Each value Python's json would let through but no column can store is refused, naming where it is."""
    with pytest.raises(JSONInputError, match=None) as caught:
        json_loads_strict(text)
    assert names in str(caught.value)
    str(caught.value).encode("utf-8")  # the message itself is sendable text


def test_ordinary_json_is_unchanged():
    """Nesting up to the limit, big integers (a field decides what fits), floats and astral characters pass."""
    text = '{"a": [1, -2.5, "😀", null, true], "n": 99999999999999999999, "deep": ' + "[" * 60 + "]" * 60 + "}"
    value = json_loads_strict(text.encode())
    assert value["n"] == 99999999999999999999 and value["a"][2] == "😀"


def test_bytes_that_are_not_utf8_are_refused():
    """A body that is not UTF-8 is refused, naming the byte."""
    with pytest.raises(JSONInputError, match="not UTF-8"):
        json_loads_strict(b'{"a": "\xff"}')


def test_value_check_walks_without_recursion():
    """A value nested far past the recursion limit is refused, not a RecursionError."""
    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(JSONInputError, match="nested more than 64"):
        json_value_check(value)
