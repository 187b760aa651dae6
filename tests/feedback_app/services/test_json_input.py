import pytest

from feedback_app.services.json_input import (
    MAX_DEPTH, JSONInputError, JSONSyntaxError, json_loads_strict, json_text_check, json_value_check,
)


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
        ('{"prompt": "\\ud800"}', "prompt: holds a lone surrogate (U+D800 at character 1), which is not text"),
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


def test_plain_json_reads_as_json():
    """Ordinary values, the 64-bit extremes included, come back as json.loads returns them."""
    text = '{"a": [1, 2.5, "x", true, null], "b": {"c": -9223372036854775808, "d": 9223372036854775807}}'
    assert json_loads_strict(text) == {"a": [1, 2.5, "x", True, None], "b": {"c": -(2**63), "d": 2**63 - 1}}


def test_nesting_up_to_the_limit_is_fine_and_one_more_is_not():
    """MAX_DEPTH containers, the outermost counted, pass; one more is refused naming the outermost field."""
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    expected = []
    for _ in range(MAX_DEPTH - 1):
        expected = [expected]
    assert json_loads_strict(deep) == expected
    with pytest.raises(JSONInputError, match="nested more than 64 levels deep"):
        json_loads_strict("[" + deep + "]")
    with pytest.raises(JSONInputError) as caught:
        json_loads_strict('{"metadata": {"x": ' + deep + "}}")
    assert caught.value.field == "metadata"


@pytest.mark.parametrize(
    ("text", "field"),
    [('{"k": {"v": NaN}}', "k.v"), ('{"k": [1, Infinity]}', "k[1]"), ('{"\\ud800": 1}', "\\ud800"), ("NaN", "")],
)
def test_the_field_of_a_refused_value_is_named(text, field):
    """The error's ``field`` is the path to the value, apart from its message."""
    with pytest.raises(JSONInputError) as caught:
        json_loads_strict(text)
    assert caught.value.field == field
    assert str(caught.value) == (f"{field}: {caught.value.message}" if field else caught.value.message)


def test_where_names_the_place_of_the_text_itself():
    """A CSV cell's JSON is named from its column."""
    with pytest.raises(JSONInputError) as caught:
        json_loads_strict('{"x": NaN}', where="metadata")
    assert str(caught.value) == "metadata.x: NaN is not a number JSON allows; use a finite number or null"


def test_malformed_json_is_a_syntax_error_carrying_json_s_own_details():
    """Callers word a syntax error their own way from ``msg`` and ``colno``."""
    with pytest.raises(JSONSyntaxError) as caught:
        json_loads_strict('{"a": }')
    assert (caught.value.msg, caught.value.colno) == ("Expecting value", 7)


def test_an_integer_that_can_be_read_is_kept_exactly():
    """Past 64 bits is fine (JSON columns store it as it is); past 1,000 digits is refused."""
    assert json_loads_strict('{"n": 9223372036854775808, "m": -61868867552475828316965556977664}') == {
        "n": 2**63, "m": -61868867552475828316965556977664}


def test_parsed_values_get_the_same_wording():
    """A value parsed elsewhere (items posted to the API) is refused in the words the parser uses."""
    with pytest.raises(JSONInputError) as caught:
        json_value_check({"x": [float("-inf")]}, where="metadata")
    assert str(caught.value) == "metadata.x[0]: -Infinity is not a number JSON allows; use a finite number or null"
    json_value_check({"n": 2**64, "ok": True})


def test_text_check_names_the_place():
    """A string from a CSV cell or a posted item is refused for a lone surrogate or a NUL, naming where."""
    assert json_text_check("fine 😀", where="prompt") == "fine 😀"
    with pytest.raises(JSONInputError, match=r"responses\[1\]: holds a lone surrogate \(U\+DC80 at character 2\)"):
        json_text_check("b\udc80", where="responses[1]")
    with pytest.raises(JSONInputError, match="prompt: holds a NUL character"):
        json_text_check("a\x00", where="prompt")
