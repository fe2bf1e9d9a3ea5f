"""The canonical form as people and checksums see it: compare forms (``canonical.py``) turned
into the documented readable values (``display_value``), the canonical JSON encoding of a row
and its SHA-256 checksum, and the key texts (``key_text``, ``primary_key_text``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from reconciliation.engine.canonical import column_canonicalizer
from reconciliation.engine.codecs import CODECS
from reconciliation.engine.cqltypes import CqlType
from reconciliation.engine.keys import format_key
from reconciliation.engine.unreadable import is_unreadable


def key_text(value: Any) -> str:
    """The text of a canonical value used as a map key (and in ``primary_key_value``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def display_value(ctype: CqlType, value: Any) -> Any:
    """The canonical form (the table above) of a compare form."""
    if value is None or is_unreadable(value):
        return value
    name = ctype.name
    codec = CODECS.get(name)
    if codec is not None:
        return codec.display(value)
    if name in {"list", "vector", "set"}:
        return [display_value(ctype.params[0], v) for v in value]
    if name == "tuple":
        return [display_value(t, v) for t, v in zip(ctype.params, value, strict=False)]
    if name == "map":
        pairs = {
            key_text(display_value(ctype.params[0], k)): display_value(ctype.params[1], v)
            for k, v in value.items()
        }
        return {k: pairs[k] for k in sorted(pairs)}
    if name == "udt":
        types = dict(ctype.fields)
        return {k: display_value(types[k], v) if k in types else v for k, v in value.items()}
    return value


# -- checksums and keys -----------------------------------------------------------------------


def canonical_json(names: Sequence[str], values: Sequence[Any]) -> str:
    """The documented canonical encoding of a row: a JSON object in column-name order."""
    return json.dumps(
        dict(zip(names, values, strict=True)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def row_checksum(names: Sequence[str], values: Sequence[Any]) -> str:
    """SHA-256 (hex) of ``canonical_json`` of canonical values: the same on both sides for
    equal rows."""
    return hashlib.sha256(canonical_json(names, values).encode("utf-8")).hexdigest()


def display_row(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """A row of canonical values as a person reads it (``Mismatch.cassandra_data``)."""
    return dict(zip(names, values, strict=True))


def primary_key_text(values: Sequence[Any]) -> str:
    """``Mismatch.primary_key_value`` from a key's canonical values (keys.format_key)."""
    return format_key([v if isinstance(v, str) else key_text(v) for v in values])


def to_canonical(ctype: CqlType, value: Any) -> Any:
    """One value, from either store, in canonical form."""
    return display_value(ctype, column_canonicalizer(ctype)(value))
