import pytest

from feedback_app.views.params import IdConverter, ParamError, ascii_int


@pytest.mark.parametrize("value", ["²", "٣", "１", " 1", "1 ", "-1", "", "99999999999999999999", "1e3"])
def test_ascii_int_refuses_what_int_would_take_or_no_column_holds(value):
    with pytest.raises(ParamError) as caught:
        ascii_int(value, name="rater")
    assert caught.value.name == "rater" and "ASCII digits" in caught.value.message


def test_ascii_int_keeps_to_its_range():
    assert ascii_int("9223372036854775807", name="n") == 2**63 - 1
    with pytest.raises(ParamError):
        ascii_int("11", name="n", high=10)


def test_the_id_converter_matches_ascii_digits_only_and_marks_huge_ones():
    import re

    assert re.fullmatch(IdConverter.regex, "123") and not re.fullmatch(IdConverter.regex, "٣")
    assert IdConverter().to_python("123") == 123
    assert IdConverter().to_python("9" * 400) > 2**63 - 1  # no 400-digit int is built; the middleware refuses it
