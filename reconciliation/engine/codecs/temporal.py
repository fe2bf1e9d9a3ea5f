"""The temporal CQL types: timestamp, date, time, duration.

Compare forms: a timestamp is its epoch milliseconds (sub-milliseconds cut, like
Cassandra), a date its day number from 1970-01-01, a time its microseconds since midnight
(PostgreSQL's precision), a duration ``<months>mo<days>d<nanoseconds>ns`` with the three
fields kept apart.  Numbers, not dates, so that years past 9999 and ±infinity stay
comparable (``unreadable.finite_ms``).
"""

from __future__ import annotations

import datetime as dt
import re
from operator import attrgetter
from typing import Any

from cassandra.util import Duration

from reconciliation.engine.codecs.base import (
    EPOCH,
    EPOCH_ORDINAL,
    EPOCH_UTC,
    MILLISECOND,
    TEXT_TARGETS,
    CannotConvert,
    Codec,
    into_target,
    text_of,
)
from reconciliation.engine.codecs.lookup import MS_RANGE, KeyFilter, days_param, guard, ms_param
from reconciliation.engine.unreadable import finite_days, finite_ms, invalid

_INTEGER = re.compile(r"-?[0-9]+\Z")
_DATE = re.compile(r"-?[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?\Z")
_DURATION_FORM = re.compile(r"^(-?\d+)mo(-?\d+)d(-?\d+)ns$")
_INT8 = 2**63

# -- compare forms --------------------------------------------------------------------------------


def timestamp_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        return (value - EPOCH) // MILLISECOND
    return (value - EPOCH_UTC) // MILLISECOND


def _timestamp(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return timestamp_ms(value)
    if isinstance(value, int) and not isinstance(value, bool):  # epoch milliseconds
        return value
    if isinstance(value, str):
        try:
            return timestamp_ms(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return invalid(value)
    if isinstance(value, dt.date):
        return timestamp_ms(dt.datetime(value.year, value.month, value.day))
    return invalid(value)


def _date(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return invalid(value)
    if isinstance(value, dt.date):
        return value.toordinal() - EPOCH_ORDINAL
    days = getattr(value, "days_from_epoch", None)  # the driver's Date
    if isinstance(days, int):
        return days
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).toordinal() - EPOCH_ORDINAL
        except ValueError:
            return invalid(value)
    return invalid(value)


def micros_of(value: dt.time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _time(value: Any) -> Any:
    if isinstance(value, dt.time):
        return micros_of(value)
    nanoseconds = getattr(value, "nanosecond_time", None)  # the driver's Time
    if isinstance(nanoseconds, int):
        return nanoseconds // 1000
    if isinstance(value, str):
        try:
            return micros_of(dt.time.fromisoformat(value.strip()))
        except ValueError:
            return invalid(value)
    return invalid(value)


def _duration(value: Any) -> Any:
    """Months, days and nanoseconds, each kept apart (never 1 month = 30 days, nor 25 h =
    1 day 1 h): PostgreSQL's interval is read field by field (``postgres.py``)."""
    if hasattr(value, "months") and hasattr(value, "nanoseconds"):  # the driver's Duration
        return f"{value.months}mo{value.days}d{value.nanoseconds}ns"
    if isinstance(value, str) and _DURATION_FORM.match(value.strip()):
        return value.strip()
    # A timedelta has already folded the fields together: it cannot be compared.
    return invalid(value)


# -- the canonical form -----------------------------------------------------------------------------


def _display_timestamp(ms: Any) -> Any:
    if not isinstance(ms, int):
        return ms
    try:
        return (EPOCH + dt.timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"
    except OverflowError:
        return str(ms)


def _display_date(days: Any) -> Any:
    if not isinstance(days, int):
        return days
    try:
        return dt.date.fromordinal(days + EPOCH_ORDINAL).isoformat()
    except (ValueError, OverflowError):
        return str(days)


def _display_time(micros: Any) -> Any:
    if not isinstance(micros, int):
        return micros
    seconds, micro = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}"


# -- parse ---------------------------------------------------------------------------------------------


def _parse_timestamp(text: str) -> dt.datetime:
    """ISO 8601 (``Z`` or an offset; no zone means UTC) or epoch milliseconds, cut to the
    millisecond Cassandra keeps."""
    if _INTEGER.match(text):  # milliseconds since the epoch, as CQL also takes
        if len(text.lstrip("-")) > 20 or not -_INT8 <= int(text) < _INT8:
            raise ValueError(f"{text[:24]} is out of range for timestamp.")
        try:
            return EPOCH_UTC + dt.timedelta(milliseconds=int(text))
        except OverflowError as exc:
            raise ValueError(f"{text} ms since the epoch is out of range.") from exc
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp.") from exc
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        value.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError(f"{text!r} is out of range for timestamp.") from exc
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _lenient_timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _parse_date(text: str) -> dt.date:
    if not _DATE.match(text):
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD).")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}.") from exc


def _parse_time(text: str) -> dt.time:
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a time of day (HH:MM:SS[.fffffffff]).")
    hours, minutes, seconds = (int(g) for g in match.groups()[:3])
    fraction = (match.group(4) or "").ljust(9, "0")
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a valid time of day.")
    if fraction[6:].strip("0"):  # the driver binds microseconds
        raise ValueError(f"{text!r} has more precision than microseconds.")
    return dt.time(hours, minutes, seconds, int(fraction[:6]))


def _from_ms(ms: Any) -> Any:
    if isinstance(ms, int):
        return EPOCH_UTC + dt.timedelta(milliseconds=ms)
    return ms


# -- repair's write ------------------------------------------------------------------------------------


def _duration_target(value: Any, udt: str) -> Any:
    """A Duration into an interval field by field (months, days, microseconds), or its
    canonical text into a text column; never folded (1 month is not 30 days)."""
    if not isinstance(value, Duration):
        return into_target(value, udt)
    if udt == "interval":
        if value.nanoseconds % 1000:
            raise CannotConvert(
                f"{text_of(value)} has nanoseconds; a PostgreSQL interval keeps microseconds."
            )
        return f"{value.months} months {value.days} days {value.nanoseconds // 1000} microseconds"
    if udt in TEXT_TARGETS:
        return text_of(value)
    raise CannotConvert(f"a duration needs an interval or a text column, not {udt}.")


CODECS = (
    Codec(
        names=("timestamp",),
        compare=_timestamp,
        cassandra_fast=_timestamp,  # in a collection: a datetime (naive UTC) or an int
        cassandra_select="blobasbigint(timestampasblob({}))",  # no datetime per value
        # 8 bytes: epoch milliseconds (exact from PostgreSQL 14; sub-milliseconds cut, as
        # compared); ±infinity is one byte no Cassandra timestamp has.
        cassandra_bytes="timestampasblob({})",
        byte_forms={
            pg: (
                "CASE WHEN isfinite({0}) THEN int8send(floor(extract(epoch FROM {0}) * 1000)::int8)"
                " WHEN {0} IS NOT NULL THEN '\\x00'::bytea END",
                140000,
            )
            for pg in ("timestamptz", "timestamp")
        },
        bind_selected=_from_ms,
        parse=_parse_timestamp,
        lenient=_lenient_timestamp,
        display=_display_timestamp,
        # extract(epoch) is exact (numeric) from PostgreSQL 14 on.
        postgres_forms={"timestamptz": ("@ms", 140000), "timestamp": ("@ms", 140000)},
        postgres_fast={
            "@ms": finite_ms,
            "timestamptz": lambda v: (v - EPOCH_UTC) // MILLISECOND,
            "timestamp": lambda v: (v - EPOCH) // MILLISECOND,
        },
        postgres_inline={
            "@ms": "finite_ms({v})",
            "timestamptz": "({v} - EPOCH_UTC) // MILLISECOND",
            "timestamp": "({v} - EPOCH) // MILLISECOND",
        },
        key_filters={
            pg: KeyFilter(MS_RANGE.replace("{epoch}", f"'epoch'::{pg}"), guard(ms_param))
            for pg in ("timestamptz", "timestamp")
        },
        postgres_types=("timestamp with time zone", "timestamp without time zone"),
    ),
    Codec(
        names=("date",),
        compare=_date,
        cassandra_fast=attrgetter("days_from_epoch"),
        cassandra_inline="{v}.days_from_epoch",
        parse=_parse_date,
        lenient=dt.date.fromisoformat,
        display=_display_date,
        # a day number: infinity and years past 9999 stay readable
        postgres_forms={"date": ("@days", 0)},
        # 4 bytes: the day number + 2^31, unsigned
        cassandra_bytes="dateasblob({})",
        byte_forms={
            "date": (
                "CASE WHEN isfinite({0}) THEN substring(int8send(({0} - DATE '1970-01-01')::int8"
                " + 2147483648) FROM 5) WHEN {0} IS NOT NULL THEN '\\x00'::bytea END",
                0,
            )
        },
        postgres_fast={"@days": finite_days, "date": lambda v: v.toordinal() - EPOCH_ORDINAL},
        postgres_inline={"@days": "finite_days({v})", "date": "({v}.toordinal() - EPOCH_ORDINAL)"},
        key_filters={"date": KeyFilter("{c} = DATE '1970-01-01' + {x}::int4", guard(days_param))},
        postgres_types=("date",),
    ),
    Codec(
        names=("time",),
        compare=_time,
        cassandra_fast=lambda v: v.nanosecond_time // 1000,
        cassandra_inline="({v}.nanosecond_time // 1000)",
        parse=_parse_time,
        lenient=dt.time.fromisoformat,
        display=_display_time,
        postgres_fast={"time": micros_of},
        # 8 bytes: nanoseconds since midnight (a Cassandra time with sub-microsecond digits
        # has no equal bytes: it is decoded and compared at microseconds)
        cassandra_bytes="timeasblob({})",
        byte_forms={"time": ("int8send((extract(epoch FROM {}) * 1000000000)::int8)", 140000)},
        postgres_inline={"time": "micros_of({v})"},
        key_filters={"time": KeyFilter("{c} = {x}::time", guard(lambda v: str(_display_time(v))))},
        postgres_types=("time without time zone",),
    ),
    Codec(
        names=("duration",),
        compare=_duration,
        cassandra_fast=_duration,
        target=_duration_target,
        postgres_forms={"interval": ("@interval", 0)},  # months, days and time kept apart
        postgres_fast={"@interval": None},
    ),
)
