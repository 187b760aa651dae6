"""Column mappings: a file of another shape imported as it is, and the hints a file of the wrong kind or shape gets."""

import json

import pytest

from feedback_app.services.import_columns import ColumnMappingError, column_mapping_parse
from feedback_app.services.import_parsing import ImportValidationError, parse_preferences, parse_prompt_items, parse_prompts

SUPPORT_CSV = (b'context,instruction,intent,category,response\n'
               b'customer support,where is my parcel?,track_order,SHIPPING,"It is on its way,\nsoon."\n'
               b'customer support,"cancel order 12, please",cancel_order,ORDER,Done.\n')


def prompts_of(data: bytes, spec: str, filename: str = "s.csv") -> tuple[list, list[str]]:
    left_out: list[str] = []
    return parse_prompts(data, filename=filename, mapping=column_mapping_parse(spec, kind="prompts"), left_out=left_out), left_out


def problems(parse, data: bytes, filename: str, **options) -> list[str]:
    with pytest.raises(ImportValidationError) as info:
        parse(data, filename=filename, **options)
    return [str(e) for e in info.value.errors]


def test_a_mapping_reads_the_named_columns_and_lists_the_others():
    records, left_out = prompts_of(SUPPORT_CSV, " prompt = instruction ; tags=intent, category; metadata=context ")
    assert [(r.line, r.prompt, r.tags, r.metadata, r.responses) for r in records] == [
        (2, "where is my parcel?", ["shipping", "track_order"], {"context": "customer support"}, []),
        (4, "cancel order 12, please", ["cancel_order", "order"], {"context": "customer support"}, []),
    ]
    assert left_out == ["response"]


def test_responses_come_from_several_columns_in_the_order_named_and_empty_cells_are_left_out():
    data = b"q,worse,better,best\nHi?,a,,c\n"
    (record,), _ = prompts_of(data, "prompt=q; responses=best,better,worse")
    assert record.responses == ["c", "a"]
    assert problems(parse_prompts, b"q,a\nHi?,x\n", "s.csv", mapping=column_mapping_parse("prompt=q; responses=a", kind="prompts")) == [
        "line 2, field 'responses': a comparison needs at least 2 responses, got 1"]


def test_json_lines_are_mapped_by_their_keys():
    data = "\n".join(json.dumps(r) for r in [{"instruction": "Hi?", "output": ["x"], "id": 7, "good": "a", "bad": "b"},
                                             {"instruction": "Yo?", "good": "c", "bad": "d", "labels": ["p", "q"]}]).encode()
    records, left_out = prompts_of(data, "prompt=instruction; responses=good,bad; tags=labels; metadata=id", "s.jsonl")
    assert [(r.prompt, r.responses, r.tags, r.metadata) for r in records] == [("Hi?", ["a", "b"], [], {"id": 7}),
                                                                              ("Yo?", ["c", "d"], ["p", "q"], {})]
    assert left_out == ["output"]
    left_out = []
    (pair,) = parse_preferences(b'{"q": "Hi?", "up": "a", "down": "b"}', filename="p.jsonl", left_out=left_out,
                                mapping=column_mapping_parse("prompt=q; chosen=up; rejected=down", kind="preferences"))
    assert (pair.prompt, pair.chosen, pair.rejected, left_out) == ("Hi?", "a", "b", [])


def test_a_problem_names_the_column_a_field_was_read_from():
    mapping = column_mapping_parse("prompt=instruction; tags=intent", kind="prompts")
    data = b"instruction,intent\n,ok\nfine,!!\n"
    assert problems(parse_prompts, data, "s.csv", mapping=mapping) == [
        "line 2, field 'instruction': missing", "line 3, field 'tags[0]': expected a non-empty word, got '!!'"]
    assert problems(parse_prompts, b'{"text": "Hi"}\n', "s.jsonl", mapping=mapping) == ["line 1, field 'instruction': missing"]


def test_a_mapped_column_the_file_lacks_is_the_files_one_problem():
    mapping = column_mapping_parse("prompt=question; tags=intent,topic", kind="prompts")
    assert problems(parse_prompts, SUPPORT_CSV * 2, "s.csv", mapping=mapping) == [
        "line 1: no columns 'question', 'topic' in the file, which the column mapping reads "
        "(the file's columns: 'context', 'instruction', 'intent', 'category', 'response')"]
    mapping = column_mapping_parse("prompt=q", kind="prompts")
    assert problems(parse_prompts, b"q,x,q\na,b,c\n", "s.csv", mapping=mapping) == [
        "line 1, field 'q': a second column of this name (the column mapping reads it)"]
    prompts_of(b"q,x,x\na,b,c\n", "prompt=q")  # a repeated column it does not read is no problem


@pytest.mark.parametrize("spec, kind, expected", [
    ("prompt", "prompts", "'prompt' is not field=column (e.g. prompt=instruction)"),
    ("prompt=a; prmpt=b", "prompts", "'prmpt' is no field of a prompts file (its fields: context, metadata, prompt, responses, tags)"),
    ("prompt=a;prompt=b", "prompts", "'prompt' is mapped twice"),
    ("prompt=a,b", "prompts", "'prompt' is read from one column, not 2"),
    ("prompt=a; tags=b,,c", "prompts", "'tags=b,,c' names an empty column"),
    ("prompt=a; tags=b,b", "prompts", "'tags=b,b' names a column twice"),
    ("tags=intent", "prompts", "the mapping names no column for prompt, which a prompts file needs"),
    ("prompt=q; chosen=a", "preferences", "the mapping names no column for rejected, which a preferences file needs"),
    ("prompt=q; responses=a,b", "preferences", "'responses' is no field of a preferences file (its fields: chosen, context, "
                                               "margin, metadata, prompt, rejected, tags)"),
])
def test_a_mapping_that_cannot_be_used_says_why(spec, kind, expected):
    with pytest.raises(ColumnMappingError) as info:
        column_mapping_parse(spec, kind=kind)
    assert str(info.value) == expected


def test_a_blank_mapping_is_none_and_a_mapping_reads_back_as_written():
    assert column_mapping_parse(" ; ", kind="prompts") is None
    assert str(column_mapping_parse("prompt = a ;tags=b , c", kind="prompts")) == "prompt=a; tags=b,c"


def test_a_file_of_the_other_kind_gets_one_answer_naming_the_kind():
    pairs = b'{"chosen": "\\n\\nHuman: Hi\\n\\nAssistant: a", "rejected": "\\n\\nHuman: Hi\\n\\nAssistant: b"}\n' * 30
    assert problems(parse_prompts, pairs, "hh.jsonl") == ["every line has the fields of a preferences file: import it as preferences"]
    assert problems(parse_preferences, b'{"prompt": "Hi", "responses": ["a", "b"]}\n' * 30, "p.jsonl") == [
        "every line has the fields of a prompts file: import it as prompts"]
    assert problems(parse_prompts, b"prompt,chosen,rejected\nq,a,b\n", "p.csv") == [
        "line 1: unknown columns 'chosen', 'rejected' (expected some of: context, metadata, prompt, response_N, responses, tags); "
        "these are the fields of a preferences file: import it as preferences"]
    with pytest.raises(ImportValidationError) as info:  # the API takes prompts only: its items are named one by one
        parse_prompt_items([{"prompt": "Hi", "chosen": "a", "rejected": "b"}])
    assert [str(e) for e in info.value.errors] == [
        "item 1, field 'chosen': unknown field (expected some of: context, metadata, prompt, responses, tags)"]
    mixed = b'{"prompt": "Hi", "chosen": "a", "rejected": "b"}\n{"prompt": "Yo", "tags": 3}\n'  # not every line: each named
    assert problems(parse_prompts, mixed, "m.jsonl") == [
        "line 1, field 'chosen': unknown field (expected some of: context, metadata, prompt, responses, tags)",
        "line 2, field 'tags': expected a list of strings, got a number"]


def test_a_problem_is_named_once_even_when_columns_and_fields_swap_names():
    """prompt read from a column named "context" and context from one named "prompt": a cell's problem names its column."""
    mapping = column_mapping_parse("prompt=context; context=prompt", kind="prompts")
    assert problems(parse_prompts, b'context,prompt\nHi,"[1"\n', "s.csv", mapping=mapping) == [
        "line 2, field 'prompt': not valid JSON (Expecting ',' delimiter)"]
