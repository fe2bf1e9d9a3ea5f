"""The other scalar CQL types: text, varchar, ascii, boolean, uuid, timeuuid, blob, inet.

Compare forms: text is the string (``""`` is a value, not NULL), a boolean the ``bool``,
a uuid its 16 bytes (as Cassandra serialises it: no ``uuid.UUID`` per value), a blob its
bytes, an inet the address text (``::1``, ``10.0.0.1``).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from operator import attrgetter
from typing import Any

from reconciliation.engine.codecs.base import Codec, identity
from reconciliation.engine.codecs.lookup import (
    IMPOSSIBLE,
    TEXT_COLUMNS,
    KeyFilter,
    guard,
    strings,
    text_filters,
)
from reconciliation.engine.unreadable import invalid

TEXT_TYPES = ("text", "varchar", "ascii")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]*)\Z")

# -- compare forms --------------------------------------------------------------------------------


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "t", "f"}:
        return value.strip().lower() in {"true", "t"}
    return invalid(value)


def _uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, bytes) and len(value) == 16:
        return value
    try:
        return uuid.UUID(str(value).strip()).bytes
    except ValueError:
        return invalid(value)


def blob_form(value: Any) -> Any:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        text = value.strip().lower()
        for prefix in ("\\x", "0x"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
        try:
            return bytes.fromhex(text)
        except ValueError:
            return invalid(value)
    return invalid(value)


def _inet(value: Any) -> Any:
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        if value.network.prefixlen == value.max_prefixlen:
            return str(value.ip)
        return str(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        try:
            return _inet(ipaddress.ip_interface(text))
        except ValueError:
            return invalid(value)


# -- parse --------------------------------------------------------------------------------------------


def _parse_text(kind: str) -> Any:
    def parse(text: str) -> str:
        if kind == "ascii" and not text.isascii():
            raise ValueError("an ascii key may hold ASCII characters only.")
        text.encode("utf-8")  # lone surrogates cannot be stored (UnicodeEncodeError)
        return text

    return parse


def _parse_boolean(text: str) -> bool:
    if text not in {"true", "false"}:
        raise ValueError(f"{text[:20]!r} is not true or false.")
    return text == "true"


def _parse_uuid(kind: str) -> Any:
    def parse(text: str) -> uuid.UUID:
        if not _UUID.match(text):
            raise ValueError(f"{text!r} is not a UUID (8-4-4-4-12 hexadecimal digits).")
        value = uuid.UUID(text)
        if kind == "timeuuid" and value.version != 1:
            raise ValueError(f"{text!r} is not a time-based (version 1) UUID.")
        return value

    return parse


def _parse_blob(text: str) -> bytes:
    match = _HEX.match(text)
    if not match or len(match.group(1)) % 2:
        raise ValueError(f"{text[:40]!r} is not hexadecimal bytes.")
    return bytes.fromhex(match.group(1))


def _parse_inet(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ValueError(f"{text[:60]!r} is not an IPv4 or IPv6 address.") from exc


def _display_uuid(value: Any) -> Any:
    return str(uuid.UUID(bytes=value)) if isinstance(value, bytes) else value


def _from_bytes(value: Any) -> Any:
    return uuid.UUID(bytes=value) if isinstance(value, bytes) else value


def _uuid_codec(kind: str) -> Codec:
    return Codec(
        cassandra_bytes=kind + "asblob({})",
        byte_forms={"uuid": ("uuid_send({})", 0)},
        names=(kind,),
        compare=_uuid,
        cassandra_fast=attrgetter("bytes"),
        cassandra_inline="{v}.bytes",
        cassandra_select=kind + "asblob({})",  # 16 bytes: no uuid.UUID per value
        bind_selected=_from_bytes,
        parse=_parse_uuid(kind),
        lenient=uuid.UUID,
        display=_display_uuid,
        postgres_forms={"uuid": ("@bytes", 0)},
        postgres_fast={"uuid": attrgetter("bytes"), "@bytes": None},
        postgres_inline={"uuid": "{v}.bytes"},
        key_filters={
            "uuid": KeyFilter("{c} = {x}::uuid", guard(lambda v: str(_display_uuid(v)))),
            # Every text Python's uuid.UUID() reads (any case, braces, urn:uuid:, no
            # hyphens) ends in the same 32 hex digits once everything else is dropped.
            **dict.fromkeys(
                TEXT_COLUMNS,
                KeyFilter(
                    "right(lower(regexp_replace({c}::text, '[^0-9A-Fa-f]', '', 'g')), 32) = {x}",
                    guard(lambda v: v.hex() if isinstance(v, bytes) else IMPOSSIBLE),
                ),
            ),
        },
        postgres_types=("uuid",) if kind == "uuid" else (),
    )


def _text_codec(kind: str) -> Codec:
    return Codec(
        # UTF-8 (ascii is a subset); bpchar pads, citext folds: those are decoded
        cassandra_bytes=kind + "asblob({})",
        byte_forms=dict.fromkeys(("text", "varchar"), ("convert_to({}, 'UTF8')", 0)),
        names=(kind,),
        compare=_text,
        cassandra_fast=None,
        parse=_parse_text(kind),
        lenient=identity,
        postgres_fast={"text": None, "varchar": None, "bpchar": None, "citext": None},
        key_filters=text_filters(),
        postgres_types=("text", "character varying", "character") if kind == "text" else (),
    )


CODECS = (
    *(_text_codec(kind) for kind in TEXT_TYPES),
    Codec(
        names=("boolean",),
        cassandra_bytes="booleanasblob({})",
        byte_forms={"bool": ("boolsend({})", 0)},
        compare=_boolean,
        cassandra_fast=None,
        parse=_parse_boolean,
        lenient=_parse_boolean,
        postgres_fast={"bool": None},
        key_filters={
            "bool": KeyFilter(
                "{c} = {x}::bool",
                guard(lambda v: "true" if v is True else ("false" if v is False else IMPOSSIBLE)),
            )
        },
        postgres_types=("boolean",),
    ),
    _uuid_codec("uuid"),
    _uuid_codec("timeuuid"),
    Codec(
        names=("blob",),
        cassandra_bytes="{}",  # a blob is its bytes
        byte_forms={"bytea": ("{}", 0)},
        compare=blob_form,
        cassandra_fast=None,
        parse=_parse_blob,
        lenient=bytes.fromhex,
        display=lambda v: v.hex() if isinstance(v, bytes) else v,
        postgres_fast={"bytea": blob_form},
        postgres_inline={"bytea": "blob_form({v})"},
        key_filters={
            "bytea": KeyFilter("{c} = decode({x}, 'hex')", guard(lambda v: bytes(v).hex()))
        },
        postgres_types=("bytea",),
    ),
    Codec(
        names=("inet",),
        # 4 or 16 address bytes; an inet with a netmask (10.0.0.1/24) equals no address
        cassandra_bytes="inetasblob({})",
        byte_forms={
            "inet": (
                "CASE WHEN masklen({0}) = CASE family({0}) WHEN 4 THEN 32 ELSE 128 END "
                "THEN substring(inet_send({0}) FROM 5) WHEN {0} IS NOT NULL THEN '\\x00'::bytea END",
                0,
            )
        },
        compare=_inet,
        cassandra_fast=_inet,
        parse=_parse_inet,
        lenient=lambda text: str(ipaddress.ip_address(text)),
        key_filters={"inet": KeyFilter("{c} = {x}::inet", guard(strings))},
        postgres_types=("inet",),
    ),
)
