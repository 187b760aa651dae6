import json

import pytest

from feedback_app.services.import_json import MAX_JSON_DEPTH, UnsafeJson, check_json_value, strict_json_loads


def test_plain_json_reads_as_json():
    assert strict_json_loads('{"a": [1, 2.5, "x", true, null], "b": {"c": -9223372036854775808}}') == {
        "a": [1, 2.5, "x", True, None], "b": {"c": -(2**63)}}


def test_nesting_up_to_the_limit_is_fine_and_one_more_is_not():
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert strict_json_loads(deep) is not None
    with pytest.raises(UnsafeJson, match="nested deeper"):
        strict_json_loads("[" + deep + "]")


def test_a_value_too_deep_for_python_is_refused_without_recursion_error():
    value: list = []
    for _ in range(50_000):
        value = [value]
    with pytest.raises(UnsafeJson, match="nested deeper"):
        check_json_value(value, "metadata")


@pytest.mark.parametrize("text, field", [('{"k": {"v": NaN}}', "k.v"), ('{"k": [1, Infinity]}', "k[1]"), ('{"\\ud800": 1}', "")])
def test_the_field_of_an_unsafe_value_is_named(text, field):
    with pytest.raises(UnsafeJson) as info:
        strict_json_loads(text)
    assert info.value.field == field


def test_malformed_json_still_raises_json_decode_error():
    with pytest.raises(json.JSONDecodeError):
        strict_json_loads("{")
