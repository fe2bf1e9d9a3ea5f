"""The API's JSON parser: DRF's, hardened against bodies that parse but cannot be used.

A body nested thousands of levels deep makes Python's json module raise RecursionError,
and a ``"\\ud800"`` escape yields a lone surrogate that no database or UTF-8 encoder
accepts; both would end as a 500 further on.  Here they are a 400 ``parse_error``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise ParseError(
                "JSON parse error - the body holds an unpaired surrogate (\\ud800-\\udfff) "
                "or is nested too deeply."
            ) from None
        return data
