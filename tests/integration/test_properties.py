"""Property-based tests through the real stores: equal rows agree on every path, and one
mutated column or key is reported on every path as exactly that row, with the right type.

Hypothesis generates values of the canonical table's CQL types (simple types, collections,
tuples, UDTs, vectors, nested as Cassandra allows; every type allowed in a primary key) and
writes each to Cassandra and to PostgreSQL in one of several equal-but-differently-written
target encodings.  Then CHECKSUM, SAMPLE (sample >= rows) and ``recheck_keys`` (the
re-check by key) must report nothing; after one mutation each must report exactly it.

The example budget is small (CI); ``derandomize=True`` makes every run draw the same
examples, and ``print_blob=True`` prints a failing example's blob for ``@reproduce_failure``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import string
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cassandra.util import Duration
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cdcrecon.conf import settings
from reconciliation.choices import JobStatus, MismatchType, ValidationStrategy
from reconciliation.connections import cassandra_session, consistency_level, target_connection
from reconciliation.engine import Options, recheck_keys
from reconciliation.engine.cqltypes import parse_cql_type
from reconciliation.engine.readable import primary_key_text, to_canonical
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.models import JobFinding

PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # No shrinking: each example costs real jobs on real stores (seconds, not microseconds).
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
KEY_SETTINGS = hypothesis_settings(PROPERTY_SETTINGS, max_examples=2)

# -- values ---------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
KEY_TEXT = TEXT.filter(bool)
ASCII = st.text(string.ascii_letters + string.digits + " -_", max_size=6)
INT32 = st.integers(-(2**31), 2**31 - 1)
FLOAT32 = st.floats(width=32)
FLOAT32_FINITE = st.floats(width=32, allow_nan=False, allow_infinity=False)
DOUBLE = st.floats()
DECIMAL = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15)
INSTANT = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
UDT_FIELDS = ("street", "zip")


def _wider(number: decimal.Decimal) -> decimal.Decimal:
    """The same number with two more digits of scale (1.1 -> 1.100)."""
    with decimal.localcontext() as context:
        context.prec = 200
        exponent = int(number.as_tuple().exponent)
        return number.quantize(decimal.Decimal(1).scaleb(exponent - 2), context=context)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _duration(sign: int, months: int, days: int, micros: int) -> Duration:
    return Duration(sign * months, sign * days, sign * micros * 1000)


def _interval(value: Duration, years: bool) -> str:
    micros = value.nanoseconds // 1000
    if years:
        sign = -1 if value.months < 0 else 1
        y, m = divmod(abs(value.months), 12)
        return f"{sign * y} years {sign * m} mons {value.days} days {micros} microseconds"
    return f"{value.months} mons {value.days} days {micros} microseconds"


UUID_SPELLINGS: tuple[Callable[[uuid.UUID], Any], ...] = (
    lambda u: str(u),
    lambda u: str(u).upper(),
    lambda u: "{" + str(u) + "}",
    lambda u: u.hex,
    lambda u: f"urn:uuid:{u}",
)


@dataclasses.dataclass(frozen=True)
class Kind:
    """A CQL type, its PostgreSQL counterpart, values, and equal target encodings."""

    cql: str
    pg: str
    values: st.SearchStrategy[Any]
    encodings: tuple[Callable[[Any], Any], ...] = (lambda v: v,)
    placeholder: str = "%s"
    cassandra: Callable[[Any], Any] = lambda v: v  # the value the driver binds
    filled: Any = None  # a target value, not NULL, for a mutation of a NULL row


def _udt_json(value: tuple[Any, Any], omit_nulls: bool) -> str:
    fields = dict(zip(UDT_FIELDS, value, strict=True))
    if omit_nulls:
        fields = {k: v for k, v in fields.items() if v is not None}
    return _json(dict(reversed(list(fields.items()))))


KINDS: dict[str, Kind] = {
    "text": Kind("text", "text", TEXT, filled="x"),
    "ascii": Kind("ascii", "varchar(20)", ASCII, filled="x"),
    "int": Kind("int", "bigint", INT32, filled=1),
    "bigint": Kind(
        "bigint",
        "numeric",
        st.integers(-(2**63), 2**63 - 1),
        (lambda v: v, lambda v: decimal.Decimal(v).quantize(decimal.Decimal("0.00"))),
        filled=1,
    ),
    "varint": Kind("varint", "numeric", st.integers(-(10**30), 10**30), filled=1),
    "smallint": Kind("smallint", "integer", st.integers(-(2**15), 2**15 - 1), filled=1),
    "tinyint": Kind("tinyint", "smallint", st.integers(-128, 127), filled=1),
    "decimal": Kind("decimal", "numeric", DECIMAL, (lambda v: v, _wider), filled=1),
    "float": Kind("float", "real", FLOAT32, filled=1.5),
    "double": Kind("double", "double precision", DOUBLE, filled=1.5),
    "boolean": Kind("boolean", "boolean", st.booleans(), filled=True),
    "uuid": Kind("uuid", "text", st.uuids(), UUID_SPELLINGS, filled="x"),
    "timeuuid": Kind("timeuuid", "uuid", st.uuids(version=1), filled=uuid.UUID(int=1, version=1)),
    "timestamp": Kind(
        "timestamp",
        "timestamptz",
        INSTANT,
        (
            lambda v: v,
            lambda v: v + dt.timedelta(microseconds=999),  # sub-milliseconds: cut
            lambda v: v.astimezone(dt.timezone(dt.timedelta(hours=-7))),
        ),
        filled=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    ),
    "date": Kind("date", "date", st.dates(), filled=dt.date(2000, 1, 1)),
    "time": Kind("time", "time", st.times(), filled=dt.time(1)),
    "blob": Kind("blob", "bytea", st.binary(max_size=6), filled=b"x"),
    "inet": Kind(
        "inet",
        "inet",
        st.ip_addresses(),
        (lambda v: str(v), lambda v: v.exploded),
        "%s::inet",
        cassandra=str,
        filled="10.9.9.9",
    ),
    "duration": Kind(
        "duration",
        "interval",
        st.builds(
            _duration,
            st.sampled_from([1, -1]),
            st.integers(0, 400),
            st.integers(0, 400),
            st.integers(0, 10**11),
        ),
        (lambda v: _interval(v, False), lambda v: _interval(v, True)),
        "%s::interval",
        filled="1 day",
    ),
    "list<int>": Kind(
        "list<int>",
        "integer[]",
        st.lists(INT32, max_size=3),
        placeholder="%s::integer[]",
        filled=[1],
    ),
    "set<text>": Kind(
        "set<text>",
        "text[]",
        st.frozensets(TEXT, max_size=3),
        (lambda v: sorted(v), lambda v: sorted(v, reverse=True)),
        "%s::text[]",
        filled=["x"],
    ),
    "map<text, int>": Kind(
        "map<text, int>",
        "jsonb",
        st.dictionaries(TEXT, INT32, max_size=3),
        (lambda v: _json(v), lambda v: _json(dict(reversed(list(v.items()))))),
        "%s::jsonb",
        filled='{"x": 1}',
    ),
    "map<int, decimal>": Kind(
        "map<int, decimal>",
        "jsonb",
        st.dictionaries(INT32, DECIMAL, max_size=2),
        (
            lambda v: "{" + ", ".join(f'"{k}": {d}' for k, d in v.items()) + "}",
            lambda v: "{" + ", ".join(f'"{k}": {_wider(d)}' for k, d in v.items()) + "}",
        ),
        "%s::jsonb",
        filled='{"1": 1}',
    ),
    "frozen<tuple<int, text>>": Kind(
        "frozen<tuple<int, text>>",
        "jsonb",
        st.tuples(st.none() | INT32, st.none() | TEXT),
        (lambda v: _json(list(v)),),
        "%s::jsonb",
        filled="[1, null]",
    ),
    "frozen<UDT>": Kind(
        "frozen<UDT>",
        "jsonb",
        st.tuples(st.none() | TEXT, st.none() | INT32),
        (lambda v: _udt_json(v, False), lambda v: _udt_json(v, True)),
        "%s::jsonb",
        filled='{"zip": 1}',
    ),
    "frozen<list<frozen<map<text, frozen<set<int>>>>>>": Kind(
        "frozen<list<frozen<map<text, frozen<set<int>>>>>>",
        "jsonb",
        st.lists(st.dictionaries(TEXT, st.frozensets(INT32, max_size=2), max_size=2), max_size=2),
        (
            lambda v: _json([{k: sorted(s) for k, s in m.items()} for m in v]),
            lambda v: _json([{k: sorted(s, reverse=True) for k, s in m.items()} for m in v]),
        ),
        "%s::jsonb",
        filled='[{"x": [1]}]',
    ),
    "vector<float, 3>": Kind(
        "vector<float, 3>",
        "real[]",
        st.lists(FLOAT32_FINITE, min_size=3, max_size=3),
        placeholder="%s::real[]",
    ),
}

VALUE_KINDS = list(KINDS)
# Types allowed in a primary key, with values a key can take (no NaN: Cassandra keys are
# bytes, NaN equals NaN here, and 0.0 / -0.0 are two keys there but one here).
KEY_KINDS: dict[str, Kind] = {
    name: KINDS[name]
    for name in VALUE_KINDS
    if name
    not in {
        "duration",
        "list<int>",
        "set<text>",
        "map<text, int>",
        "map<int, decimal>",
        "vector<float, 3>",
    }
}
KEY_KINDS.update(
    {
        "text": dataclasses.replace(KINDS["text"], values=KEY_TEXT),
        "ascii": dataclasses.replace(KINDS["ascii"], values=ASCII.filter(bool)),
        "blob": dataclasses.replace(KINDS["blob"], values=st.binary(min_size=1, max_size=6)),
        "float": dataclasses.replace(KINDS["float"], values=FLOAT32_FINITE.map(lambda f: f + 0.0)),
        "double": dataclasses.replace(
            KINDS["double"],
            values=st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f + 0.0),
        ),
        # Cassandra keeps nanoseconds, the key equality microseconds: a key written with
        # sub-microsecond digits cannot be found by key (README): keys here are microseconds.
        "time": KINDS["time"],
        "frozen<list<int>>": Kind(
            "frozen<list<int>>",
            "jsonb",
            st.lists(INT32, min_size=1, max_size=3),
            (lambda v: _json(v),),
            "%s::jsonb",
        ),
        "frozen<set<text>>": Kind(
            "frozen<set<text>>",
            "text[]",
            st.frozensets(TEXT, min_size=1, max_size=3),
            (lambda v: sorted(v), lambda v: sorted(v, reverse=True)),
            "%s::text[]",
        ),
        # An empty frozen collection key is NULL in canonical form (the canonical table): no
        # key text can name it, so the keys here are not empty.
        "frozen<list<frozen<map<text, frozen<set<int>>>>>>": dataclasses.replace(
            KINDS["frozen<list<frozen<map<text, frozen<set<int>>>>>>"],
            values=st.lists(
                st.dictionaries(TEXT, st.frozensets(INT32, max_size=2), max_size=2),
                min_size=1,
                max_size=2,
            ),
        ),
        "frozen<map<text, int>>": Kind(
            "frozen<map<text, int>>",
            "jsonb",
            st.dictionaries(TEXT, INT32, min_size=1, max_size=2),
            (lambda v: _json(v), lambda v: _json(dict(reversed(list(v.items()))))),
            "%s::jsonb",
        ),
    }
)


# -- the stores -------------------------------------------------------------------------------


@pytest.fixture
def udt(cassandra) -> Any:
    name = f"addr_{uuid.uuid4().hex[:8]}"
    cassandra.execute(f"CREATE TYPE {name} (street text, zip int)")
    yield name
    cassandra.execute(f"DROP TYPE IF EXISTS {name}")


def cql_type(kind: Kind, udt: str) -> str:
    return kind.cql.replace("UDT", udt)


def canonical_key(mapping: Any, udt: str, values: list[Any], types: list[str]) -> str:
    udts = {udt: (list(UDT_FIELDS), ["text", "int"])}
    return primary_key_text(
        [to_canonical(parse_cql_type(t, udts), v) for t, v in zip(types, values, strict=True)]
    )


def run(mapping: Any, strategy: str, recheck_delay: float = 0.0, **options: Any) -> dict[str, str]:
    job = create_job(mapping, strategy, parameters=build_parameters(strategy, **options))
    changed = dataclasses.replace(settings.reconciliation, recheck_delay_seconds=recheck_delay)
    with override_settings(RECONCILIATION=changed):
        run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.transient_count == 0
    # What this job found (its findings: the ledger keeps one difference per key across runs).
    found = JobFinding.objects.filter(job=job).select_related("mismatch")
    for f in found:  # shown when an assertion fails
        m = f.mismatch
        print(strategy, m.primary_key_value, f.mismatch_type, m.cassandra_data, m.postgres_data)
    return {f.mismatch.primary_key_value: f.mismatch_type for f in found}


def rechecked(mapping: Any, keys: list[str]) -> dict[str, str]:
    options = Options(consistency=consistency_level())
    results = recheck_keys(mapping.spec, cassandra_session(), target_connection, options, keys)
    return {k: r.mismatch_type for k, r in zip(keys, results, strict=True) if r is not None}


def every_path(mapping: Any, keys: list[str], expected: dict[str, str]) -> None:
    assert run(mapping, ValidationStrategy.CHECKSUM) == expected
    assert run(mapping, ValidationStrategy.CHECKSUM, recheck_delay=0.01) == expected
    assert run(mapping, ValidationStrategy.SAMPLE, sample_size=100) == expected
    assert rechecked(mapping, keys) == expected


def is_null(value: Any) -> bool:
    """NULL in canonical form: NULL, or an empty top-level collection."""
    return value is None or (isinstance(value, list | set | frozenset | dict) and not value)


# -- every value type ---------------------------------------------------------------------------


@st.composite
def value_rows(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, int], Any]:
    count = draw(st.integers(1, 3))
    rows = []
    for n in range(count):
        row = {"n": n}
        for name in VALUE_KINDS:
            row[name] = draw(st.none() | KINDS[name].values)
        rows.append(row)
    encodings = {name: draw(st.integers(0, len(KINDS[name].encodings) - 1)) for name in VALUE_KINDS}
    mutation = draw(
        st.one_of(
            st.tuples(st.just("column"), st.integers(0, count - 1), st.sampled_from(VALUE_KINDS)),
            st.tuples(st.just("key"), st.integers(0, count - 1), st.just("")),
        )
    )
    return rows, encodings, mutation


def test_every_value_type_agrees_on_every_path_and_one_mutation_is_found(
    cassandra, target, udt, table_pair
) -> None:
    columns = {name: f"c{i}" for i, name in enumerate(VALUE_KINDS)}
    mapping = table_pair(
        "k int, n int, "
        + ", ".join(f"{columns[n]} {cql_type(KINDS[n], udt)}" for n in VALUE_KINDS)
        + ", PRIMARY KEY (k, n)",
        "k int, n int, "
        + ", ".join(f"{columns[n]} {KINDS[n].pg}" for n in VALUE_KINDS)
        + ", PRIMARY KEY (k, n)",
    )
    table = mapping.name
    names = ", ".join(columns[n] for n in VALUE_KINDS)
    insert_c = cassandra.prepare(
        f"INSERT INTO {table} (k, n, {names}) VALUES (0, ?, {', '.join('?' * len(VALUE_KINDS))})"
    )
    insert_p = (
        f"INSERT INTO public.{table} (k, n, {names}) VALUES (0, %s, "  # noqa: S608
        + ", ".join(KINDS[n].placeholder for n in VALUE_KINDS)
        + ")"
    )

    @PROPERTY_SETTINGS
    @given(value_rows())
    def check(example: tuple[list[dict[str, Any]], dict[str, int], Any]) -> None:
        rows, encodings, (mutation, index, column) = example
        try:
            for row in rows:
                cassandra.execute(
                    insert_c,
                    [
                        row["n"],
                        *(
                            None if row[n] is None else KINDS[n].cassandra(row[n])
                            for n in VALUE_KINDS
                        ),
                    ],
                )
                target.execute(
                    insert_p,
                    [
                        row["n"],
                        *(
                            None if row[n] is None else KINDS[n].encodings[encodings[n]](row[n])
                            for n in VALUE_KINDS
                        ),
                    ],
                )
            keys = [f'["0","{row["n"]}"]' for row in rows]
            every_path(mapping, keys, {})

            key = f'["0","{rows[index]["n"]}"]'
            if mutation == "column":
                name = column
                kind = KINDS[name]
                if kind.filled is None and is_null(rows[index][name]):
                    name, kind = "text", KINDS["text"]
                new = None if not is_null(rows[index][name]) else kind.filled
                if name == "text" and is_null(rows[index][name]):
                    new = "x"
                target.execute(
                    f"UPDATE public.{table} SET {columns[name]} = {kind.placeholder} "  # noqa: S608
                    "WHERE k = 0 AND n = %s",
                    [new, rows[index]["n"]],
                )
                expected = {key: MismatchType.DATA_MISMATCH}
            else:
                target.execute(
                    f"UPDATE public.{table} SET n = 99 WHERE k = 0 AND n = %s",  # noqa: S608
                    [rows[index]["n"]],
                )
                expected = {
                    key: MismatchType.MISSING_IN_POSTGRES,
                    '["0","99"]': MismatchType.MISSING_IN_CASSANDRA,
                }
            every_path(mapping, [*keys, '["0","99"]'], expected)
        finally:
            cassandra.execute(f"DELETE FROM {table} WHERE k = 0")
            target.execute(f"DELETE FROM public.{table}")  # noqa: S608

    check()


# -- every key type ---------------------------------------------------------------------------


@st.composite
def key_rows(draw: st.DrawFn, kind: Kind) -> tuple[list[tuple[Any, Any]], list[int], Any]:
    distinct = st.lists(kind.values, min_size=1, max_size=3, unique_by=_canonical_of(kind))
    partitions = draw(distinct)
    rows = [(p, c) for p in partitions for c in draw(distinct)][:4]
    encodings = [draw(st.integers(0, len(kind.encodings) - 1)) for _ in range(2 * len(rows))]
    mutation = draw(st.tuples(st.sampled_from(["column", "key"]), st.integers(0, len(rows) - 1)))
    fresh = draw(kind.values)
    return rows, encodings, (mutation, fresh)


def _canonical_of(kind: Kind) -> Callable[[Any], str]:
    ctype = parse_cql_type(kind.cql.replace("UDT", "u"), {"u": (list(UDT_FIELDS), ["text", "int"])})
    return lambda value: json.dumps(to_canonical(ctype, kind.cassandra(value)), sort_keys=True)


@pytest.mark.parametrize("name", list(KEY_KINDS))
def test_every_key_type_pairs_equal_keys_on_every_path_and_one_mutation_is_found(
    cassandra, target, udt, table_pair, name
) -> None:
    kind = KEY_KINDS[name]
    ctype = cql_type(kind, udt)
    mapping = table_pair(
        f"p {ctype}, c {ctype}, v int, PRIMARY KEY ((p), c)", f"p {kind.pg}, c {kind.pg}, v int"
    )
    table = mapping.name
    insert_c = cassandra.prepare(f"INSERT INTO {table} (p, c, v) VALUES (?, ?, 0)")
    delete_c = cassandra.prepare(f"DELETE FROM {table} WHERE p = ?")
    place = kind.placeholder
    insert_p = f"INSERT INTO public.{table} (p, c, v) VALUES ({place}, {place}, 0)"  # noqa: S608
    canonical = _canonical_of(kind)

    def text(p: Any, c: Any) -> str:
        return canonical_key(mapping, udt, [kind.cassandra(p), kind.cassandra(c)], [ctype, ctype])

    @KEY_SETTINGS
    @given(key_rows(kind))
    def check(example: tuple[list[tuple[Any, Any]], list[int], Any]) -> None:
        rows, encodings, ((mutation, index), fresh) = example
        try:
            for i, (p, c) in enumerate(rows):
                cassandra.execute(insert_c, [kind.cassandra(p), kind.cassandra(c)])
                target.execute(
                    insert_p,
                    [kind.encodings[encodings[2 * i]](p), kind.encodings[encodings[2 * i + 1]](c)],
                )
            keys = [text(p, c) for p, c in rows]
            every_path(mapping, keys, {})

            p, c = rows[index]
            # The index-th row written (ORDER BY ctid: no row has been updated yet).
            nth = f"(SELECT ctid FROM public.{table} ORDER BY ctid OFFSET {int(index)} LIMIT 1)"  # noqa: S608
            if mutation == "column" or canonical(fresh) in {canonical(c) for _, c in rows}:
                target.execute(f"UPDATE public.{table} SET v = 1 WHERE ctid = {nth}")  # noqa: S608
                expected = {keys[index]: MismatchType.DATA_MISMATCH}
            else:
                target.execute(
                    f"UPDATE public.{table} SET c = {place} WHERE ctid = {nth}",  # noqa: S608
                    [kind.encodings[0](fresh)],
                )
                expected = {
                    keys[index]: MismatchType.MISSING_IN_POSTGRES,
                    text(p, fresh): MismatchType.MISSING_IN_CASSANDRA,
                }
            every_path(mapping, [*keys, *expected], expected)
        finally:
            target.execute(f"DELETE FROM public.{table}")  # noqa: S608
            for p, _ in rows:
                cassandra.execute(delete_c, [kind.cassandra(p)])

    check()
