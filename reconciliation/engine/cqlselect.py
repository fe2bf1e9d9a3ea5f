"""What a read of the source selects and binds: the CQL of each selected column, of a row's
write-time summary, and the driver values a key is looked up by.

Timestamps are selected as epoch milliseconds and uuids as their 16 bytes (their compare
forms, so the driver builds no object per value); a row's write-time summary is two
integers computed by Cassandra in the same read (``write_time_selectors``).  A key is bound
as every driver value equal to it under the engine's key equality (``key_variants``).
"""

from __future__ import annotations

import decimal
import itertools
import json
from collections.abc import Sequence
from typing import Any

from reconciliation.engine.codecs import CODECS
from reconciliation.engine.cqltypes import CqlType
from reconciliation.engine.identifiers import cql_column
from reconciliation.engine.keys import BadKey, parse_key_part
from reconciliation.engine.readable import display_value, key_text
from reconciliation.engine.schema import Column, Layout

# A decimal partition key is found whatever its scale up to this many extra digits.
DECIMAL_EXTRA_SCALE = 12
# Subtracted from a row's largest TTL per live cell without one (write_time_selectors).
UNTIMED_PENALTY = 1_000_000_000


def select_column(column: Column) -> str:
    """How a scan or lookup selects a column: timestamps as epoch milliseconds, uuids as
    their 16 bytes (both their compare forms: no driver object is built per value)."""
    name = cql_column(column.name)
    codec = CODECS.get(column.cql_type.name)
    if codec is not None and codec.cassandra_select is not None:
        return codec.cassandra_select.format(name)
    return name


def has_write_time(ctype: CqlType) -> bool:
    """Whether a regular column of this type has one WRITETIME and TTL: not a counter, and
    not a non-frozen collection or UDT (one cell per element or field)."""
    if ctype.name == "counter":
        return False
    return ctype.frozen or ctype.name not in {"list", "set", "map", "udt"}


def write_time_selectors(columns: Sequence[Column]) -> list[str]:
    """The two selectors of a row's write-time summary over ``columns`` (its regular
    columns with a write time): the latest WRITETIME, and the largest TTL *minus* a billion
    per live cell without a TTL, so that it is negative when any live cell has none (a TTL
    is at most 20 years, 630,720,000 s).  ``x * 0 + 1`` is 1 for a non-null ``x`` and NULL
    otherwise; ``collection_sum`` / ``collection_max`` skip NULLs; the arithmetic is bigint.
    [] when there is no such column."""
    names = [cql_column(c.name) for c in columns if has_write_time(c.cql_type)]
    if not names:
        return []
    written = ", ".join(f"writetime({n})" for n in names)
    ttls = ", ".join(f"ttl({n})" for n in names)
    live = ", ".join(f"writetime({n}) * 0 + 1" for n in names)
    timed = ", ".join(f"ttl({n}) * 0 + 1" for n in names)
    untimed = f"(collection_sum([{live}]) - collection_sum([{timed}]))"
    return [
        f"collection_max([{written}])",
        f"collection_max([{ttls}]) - {untimed} * {UNTIMED_PENALTY}",
    ]


def driver_value(ctype: CqlType, canonical: Any) -> Any:
    """A canonical value as the value the driver binds for a ``ctype`` column (BadKey if
    it cannot be one)."""
    if canonical is None:
        return None
    name = ctype.name
    if name in {"list", "vector", "set"}:
        return [driver_value(ctype.params[0], v) for v in canonical]
    if name == "tuple":
        return tuple(driver_value(t, v) for t, v in zip(ctype.params, canonical, strict=False))
    if name == "map":
        key_type, value_type = ctype.params
        return {
            driver_value(key_type, _parse_map_key(key_type, k)): driver_value(value_type, v)
            for k, v in canonical.items()
        }
    if name == "udt":  # the driver binds a UDT from a tuple in field order
        return tuple(driver_value(t, canonical.get(field)) for field, t in ctype.fields)
    if name in {"float", "double"} and isinstance(canonical, float):
        return canonical
    if name == "varint" or name in {"int", "bigint", "smallint", "tinyint"}:
        if isinstance(canonical, int) and not isinstance(canonical, bool):
            return canonical
    if name == "duration":
        raise BadKey("duration cannot be a key")
    return parse_key_part(key_text(canonical), name)


def _parse_map_key(ctype: CqlType, text: str) -> Any:
    if ctype.name in {"list", "set", "map", "tuple", "udt", "vector"}:
        return json.loads(text)
    return text


def key_variants(ctype: CqlType, value: Any) -> list[Any]:
    """Driver values equal to ``value`` under the key equality but hashed differently."""
    if ctype.name == "decimal" and isinstance(value, decimal.Decimal) and value.is_finite():
        with decimal.localcontext() as context:
            context.prec = len(value.as_tuple().digits) + DECIMAL_EXTRA_SCALE + 40
            normal = value.normalize(context)
            exponent = int(normal.as_tuple().exponent)
            return [
                normal.quantize(decimal.Decimal(1).scaleb(exponent - extra), context=context)
                for extra in range(DECIMAL_EXTRA_SCALE + 1)
            ]
    if ctype.name in {"float", "double"} and value == 0:
        return [0.0, -0.0]
    return [value]


# At most this many bindings are tried for one key (its partition columns' variants).
MAX_CANDIDATES = 64


def driver_keys(layout: Layout, compare_forms: Sequence[Any]) -> list[list[Any]]:
    """The driver values to bind for a key given as compare forms: every way Cassandra
    may hold an equal partition key (a decimal's scales); [] when it cannot be a key."""
    options: list[list[Any]] = []
    partition = len(layout.partition)
    if any(value is None for value in compare_forms):
        return []  # Cassandra keys are never NULL
    try:
        for index, (value, column) in enumerate(zip(compare_forms, layout.key, strict=True)):
            ctype = column.cql_type
            bound = driver_value(ctype, display_value(ctype, value))
            options.append(key_variants(ctype, bound) if index < partition else [bound])
    except (BadKey, TypeError, ValueError, AttributeError, ArithmeticError):
        return []
    keys = [list(k) for k in itertools.product(*options)]
    return keys[:MAX_CANDIDATES]
