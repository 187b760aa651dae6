"""The API's JSON parser: DRF's, but with the refusals of services.json_input."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from feedback_app.services.json_input import JSONInputError, json_loads_strict


class StrictJSONParser(JSONParser):
    """Parse a JSON body; NaN, huge numbers, lone surrogates and deep nesting are a 400 naming the place."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not {encoding} text (byte {exc.start})") from None
        if not text.strip():
            raise ParseError("JSON parse error - the body is empty")
        try:
            return json_loads_strict(text)
        except JSONInputError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
