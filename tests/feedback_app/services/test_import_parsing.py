import json

import pytest

from feedback_app.services.import_parsing import (
    ImportValidationError,
    parse_preferences,
    parse_prompt_items,
    parse_prompts,
)


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def errors_of(data: bytes, filename: str = "x.jsonl") -> list[str]:
    with pytest.raises(ImportValidationError) as info:
        parse_prompts(data, filename=filename)
    return [str(e) for e in info.value.errors]


def test_valid_prompt_lines():
    records = parse_prompts(
        jsonl(
            {"prompt": "Where is my parcel?", "responses": ["Here.", "There."], "tags": ["Shipping", "urgent"], "metadata": {"k": 1}},
            {"prompt": "Hi", "context": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi!"}]},
            "",
            {"prompt": "Bye", "context": ["first", "second"]},
        ),
        filename="p.jsonl",
    )
    assert [r.line for r in records] == [1, 2, 4]
    assert records[0].tags == ["shipping", "urgent"] and records[0].responses == ["Here.", "There."]
    assert records[1].responses == [] and records[1].context[1] == {"role": "assistant", "content": "hi!"}
    assert records[2].context == [{"role": "user", "content": "first"}, {"role": "assistant", "content": "second"}]


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"responses": ["a", "b"]}, "line 1, field 'prompt': missing"),
        ({"prompt": "   "}, "line 1, field 'prompt': is empty"),
        ({"prompt": 5}, "line 1, field 'prompt': expected a string, got a number"),
        ({"prompt": "p", "responses": ["only one"]}, "line 1, field 'responses': a comparison needs at least 2 responses, got 1"),
        ({"prompt": "p", "responses": "a, b"}, "line 1, field 'responses': expected a list of strings, got a string"),
        ({"prompt": "p", "responses": ["a", 2]}, "line 1, field 'responses[1]': expected a string, got a number"),
        ({"prompt": "p", "responses": ["same", "same"]}, "line 1, field 'responses[1]': the same text as responses[0]"),
        ({"prompt": "p", "respones": ["a", "b"]}, "line 1, field 'respones': unknown field"),
        ({"prompt": "p", "context": [{"role": "bot", "content": "x"}]}, "line 1, field 'context[0].role': expected one of user, assistant, system"),
        ({"prompt": "p", "metadata": []}, "line 1, field 'metadata': expected an object, got a list"),
        ({"prompt": "p", "tags": "a"}, "line 1, field 'tags': expected a list of strings"),
        ({"prompt": "x" * 20_001}, "line 1, field 'prompt': 20,001 characters, over the limit of 20,000"),
        ([1, 2], "line 1: expected a JSON object, got a list"),
    ],
)
def test_bad_prompt_lines_name_the_line_and_field(row, expected):
    assert errors_of(jsonl(row))[0].startswith(expected)


def test_too_many_responses(settings):
    settings.IMPORT_MAX_RESPONSES = 3
    assert "4 responses, over the limit of 3" in errors_of(jsonl({"prompt": "p", "responses": list("abcd")}))[0]


def test_bad_json_and_encoding_are_reported_per_line():
    data = b'{"prompt": "ok"}\n{"prompt": oops}\n{"prompt": "caf\xe9"}\n'
    errors = errors_of(data)
    assert errors[0].startswith("line 2: not valid JSON")
    assert errors[1] == "line 3: not valid UTF-8 (byte 0xe9 at column 16)"


def test_all_errors_are_counted_but_only_the_first_shown(settings):
    settings.IMPORT_MAX_ERRORS_SHOWN = 2
    with pytest.raises(ImportValidationError) as info:
        parse_prompts(jsonl(*({"nope": i} for i in range(5))), filename="x.jsonl")
    assert info.value.total == 5 and len(info.value.errors) == 2
    assert "and 3 more" in str(info.value)


def test_empty_file_is_an_error():
    assert errors_of(b"\n\n") == ["there are no records to import"]


def test_csv_with_response_columns_and_bom():
    data = "\ufeffprompt,response_1,response_2,response_10,tags,metadata\nWhere?,Here,There,Nowhere,\"a, b\",\"{\"\"x\"\": 1}\"\n".encode()
    (record,) = parse_prompts(data, filename="p.csv")
    assert record.responses == ["Here", "There", "Nowhere"] and record.tags == ["a", "b"] and record.metadata == {"x": 1}


def test_csv_errors_use_file_line_numbers():
    data = b'prompt,responses\nok,"[""a"", ""b""]"\nbad,"[""a"""\n'
    assert errors_of(data, "p.csv") == ["line 3, field 'responses': not valid JSON (Expecting ',' delimiter)"]


def test_a_csv_record_is_numbered_by_the_line_it_starts_on():
    data = b'prompt,metadata\n"Two\nlines",\n"Three\nlines\nhere","{""x"": }"\nlast,"{bad"\n'
    assert errors_of(data, "p.csv") == ["line 4, field 'metadata': not valid JSON (Expecting value)",
                                        "line 7, field 'metadata': not valid JSON (Expecting property name enclosed in double quotes)"]


def test_a_csv_header_of_another_shape_is_the_files_one_problem():
    """A customer-service CSV as published (its request in "instruction", a "context" of plain text): the header is
    named, once, instead of one problem a row."""
    data = b'context,instruction,response,response_2\ncustomer support,where is my parcel?,On its way.,Soon.\n' * 3
    assert errors_of(data, "p.csv") == ["line 1: unknown columns 'instruction', 'response' (expected some of: context, metadata, "
                                        "prompt, response_N, responses, tags); to import a file of another shape, give a column mapping "
                                        "(--columns, or Column mapping in the upload form), e.g. prompt=instruction", "line 1, field 'prompt': missing column"]
    with pytest.raises(ImportValidationError):  # no row of it can be right: skipping rows imports nothing either
        parse_prompts(data, filename="p.csv", skipped=[])
    with pytest.raises(ImportValidationError) as info:
        parse_prompts(b"prompt,tags,prompt\na,b,c\n", filename="p.csv")
    assert [str(e) for e in info.value.errors] == ["line 1, field 'prompt': a second column of this name"]


def test_a_preferences_csv_needs_chosen_and_rejected_and_has_no_response_columns():
    with pytest.raises(ImportValidationError) as info:
        parse_preferences(b"prompt,chosen,response_1\nq,a,b\n", filename="x.csv")
    assert [str(e) for e in info.value.errors] == [
        "line 1: unknown column 'response_1' (expected some of: chosen, context, margin, metadata, prompt, rejected, tags); "
        "to import a file of another shape, give a column mapping (--columns, or Column mapping in the upload form), e.g. chosen=COLUMN; rejected=COLUMN",
        "line 1, field 'rejected': missing column"]
    (record,) = parse_preferences(b"prompt,chosen,rejected\nq,a,b\n", filename="x.csv")
    assert (record.line, record.chosen, record.rejected) == (2, "a", "b")


def test_api_items_are_numbered_as_items():
    with pytest.raises(ImportValidationError) as info:
        parse_prompt_items([{"prompt": "ok"}, {"prompt": ""}])
    assert str(info.value.errors[0]) == "item 2, field 'prompt': is empty"


def test_preferences_in_trl_hh_and_conversational_form():
    hh_chosen = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Refund please\n\nAssistant: Sure, here is how."
    hh_rejected = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Refund please\n\nAssistant: No."
    records = parse_preferences(
        jsonl(
            {"prompt": "Cancel my order", "chosen": "Done.", "rejected": "Can't.", "margin": 1.0},
            {"chosen": hh_chosen, "rejected": hh_rejected},
            {"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "A."}],
             "rejected": [{"role": "assistant", "content": "B."}]},
        ),
        filename="prefs.jsonl",
    )
    assert (records[0].prompt, records[0].chosen, records[0].margin) == ("Cancel my order", "Done.", 1.0)
    assert records[1].prompt == "Refund please" and records[1].chosen == "Sure, here is how." and records[1].rejected == "No."
    assert records[1].context == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert (records[2].prompt, records[2].chosen, records[2].rejected) == ("Q?", "A.", "B.")


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"prompt": "p", "chosen": "a"}, "field 'rejected': missing"),
        ({"prompt": "p", "chosen": "a", "rejected": "a"}, "field 'rejected': the same text as chosen"),
        ({"chosen": "no dialogue", "rejected": "here"}, "field 'chosen': the two dialogues share no"),
        ({"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}, "field 'margin': expected a number"),
    ],
)
def test_bad_preference_lines(row, expected):
    with pytest.raises(ImportValidationError) as info:
        parse_preferences(jsonl(row), filename="x.jsonl")
    assert expected in str(info.value.errors[0])


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"prompt": "p", "metadata": {"score": NaN}}', "line 1, field 'metadata.score': NaN is not a number JSON allows"),
        ('{"prompt": "p", "metadata": {"score": -Infinity}}', "line 1, field 'metadata.score': -Infinity is not a number JSON allows"),
        ('{"prompt": "p", "metadata": {"score": 1e999}}', "line 1, field 'metadata.score': the number 1e999 is out of range"),
        ('{"prompt": "p", "metadata": {"id": ' + "9" * 5000 + "}}", "line 1, field 'metadata.id': the number 99999999999999999999... has 5,000"),
        ('{"prompt": "p", "responses": ["ok", "bad \\udc80"]}', "line 1, field 'responses[1]': holds a lone surrogate (U+DC80"),
        ('{"prompt": "a\\u0000b"}', "line 1, field 'prompt': holds a NUL character"),
        ('{"prompt": "p", "metadata": ' + "[" * 70 + "]" * 70 + "}", "line 1, field 'metadata': nested more than 64 levels deep"),
        ("[" * 100_000 + "]" * 100_000, "line 1: nested more than 64 levels deep"),  # past the parser's own recursion limit
    ],
)
def test_json_values_the_studio_cannot_store_are_line_and_field_errors(line, expected):
    assert errors_of(line.encode())[0].startswith(expected)


def test_the_same_checks_apply_to_json_in_csv_cells():
    data = b'prompt,metadata,tags\np,"{""x"": NaN}",a\nq,,"[""\\ud800""]"\n'
    assert errors_of(data, "p.csv") == ["line 2, field 'metadata.x': NaN is not a number JSON allows; use a finite number or null",
                                        "line 3, field 'tags[0]': holds a lone surrogate (U+D800 at character 1), which is not text"]


def test_the_largest_64_bit_integers_are_fine():
    (record,) = parse_prompts(jsonl({"prompt": "p", "metadata": {"hi": 2**63 - 1, "lo": -(2**63)}}), filename="x.jsonl")
    assert record.metadata == {"hi": 2**63 - 1, "lo": -(2**63)}


def test_an_empty_reply_is_a_reply():
    hh = "\n\nHuman: Say something hurtful\n\nAssistant:"
    records = parse_preferences(
        jsonl({"prompt": "p", "chosen": "", "rejected": "Fine, here it is."}, {"chosen": hh, "rejected": hh + " You are dull."},
              {"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": ""}], "rejected": "B."}),
        filename="x.jsonl",
    )
    assert [(r.chosen, r.rejected) for r in records] == [("", "Fine, here it is."), ("", "You are dull."), ("", "B.")]


def test_skipped_rows_are_listed_and_the_rest_returned():
    skipped = []
    records = parse_prompts(jsonl({"prompt": "ok"}, {"prompt": ""}, "not json", {"prompt": "fine"}), filename="x.jsonl", skipped=skipped)
    assert [r.prompt for r in records] == ["ok", "fine"]
    assert [str(e) for e in skipped] == ["line 2, field 'prompt': is empty", "line 3: not valid JSON (Expecting value at column 1)"]


def test_skipping_still_fails_a_file_with_nothing_valid():
    with pytest.raises(ImportValidationError) as info:
        parse_preferences(jsonl({"prompt": "p", "chosen": "a", "rejected": "a"}), filename="x.jsonl", skipped=[])
    assert [str(e) for e in info.value.errors] == ["line 1, field 'rejected': the same text as chosen"]


def test_items_posted_to_the_api_get_the_same_checks():
    """The API parses its own JSON, so texts and metadata are checked again here."""
    with pytest.raises(ImportValidationError) as info:
        parse_prompt_items([{"prompt": "ok", "responses": ["a", "b\udc80"]}, {"prompt": "p", "metadata": {"n": [float("inf")]}},
                            {"prompt": "q", "metadata": {"x": float("nan")}}])
    assert [str(e) for e in info.value.errors] == [
        "item 1, field 'responses[1]': holds a lone surrogate (U+DC80 at character 2), which is not text",
        "item 2, field 'metadata.n[0]': Infinity is not a number JSON allows; use a finite number or null",
        "item 3, field 'metadata.x': NaN is not a number JSON allows; use a finite number or null",
    ]
