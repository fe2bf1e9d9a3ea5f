"""CQL type strings, as ``system_schema.columns.type`` spells them, parsed into a small tree.

    parse_cql_type("frozen<map<text, frozen<list<int>>>>")
    -> CqlType("map", (CqlType("text"), CqlType("list", (CqlType("int"),), frozen=True)),
               frozen=True)

User-defined types are resolved through ``udts`` (name -> (field names, field type strings),
from ``system_schema.types``) into ``CqlType("udt", fields=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

COLLECTIONS = frozenset({"list", "set", "map"})
CONTAINERS = frozenset({"list", "set", "map", "tuple", "udt", "vector"})

UdtDefinitions = Mapping[str, tuple[list[str], list[str]]]


class UnsupportedType(ValueError):
    """A CQL type string this engine cannot parse."""


@dataclass(frozen=True)
class CqlType:
    """One node of a CQL type: a simple type, a collection, a tuple, a vector or a UDT."""

    name: str
    params: tuple[CqlType, ...] = ()
    fields: tuple[tuple[str, CqlType], ...] = ()
    frozen: bool = False
    udt_name: str = ""
    size: int = 0  # vector<T, size>

    @property
    def is_collection(self) -> bool:
        return self.name in COLLECTIONS

    def __str__(self) -> str:
        if self.name == "udt":
            text = self.udt_name
        elif self.name == "vector":
            text = f"vector<{self.params[0]}, {self.size}>"
        elif self.params:
            text = f"{self.name}<{', '.join(str(p) for p in self.params)}>"
        else:
            text = self.name
        return f"frozen<{text}>" if self.frozen else text


@dataclass
class _Parser:
    text: str
    udts: UdtDefinitions
    pos: int = 0
    _seen: tuple[str, ...] = field(default_factory=tuple)

    def parse(self) -> CqlType:
        result = self._type()
        self._skip_space()
        if self.pos != len(self.text):
            raise UnsupportedType(f"Unexpected text after a CQL type: {self.text!r}")
        return result

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _word(self) -> str:
        self._skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            end = self.text.index('"', self.pos + 1)
            word = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return word
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] in "_."
        ):
            self.pos += 1
        if start == self.pos:
            raise UnsupportedType(f"Cannot parse the CQL type {self.text!r}")
        return self.text[start : self.pos]

    def _expect(self, char: str) -> None:
        self._skip_space()
        if self.pos >= len(self.text) or self.text[self.pos] != char:
            raise UnsupportedType(f"Cannot parse the CQL type {self.text!r}")
        self.pos += 1

    def _peek(self) -> str:
        self._skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _params(self) -> list[CqlType]:
        params = [self._type()]
        while self._peek() == ",":
            self._expect(",")
            params.append(self._type())
        self._expect(">")
        return params

    def _type(self) -> CqlType:
        word = self._word()
        lowered = word.lower()
        if lowered == "frozen":
            self._expect("<")
            inner = self._type()
            self._expect(">")
            return CqlType(inner.name, inner.params, inner.fields, True, inner.udt_name, inner.size)
        if lowered in {"list", "set", "map", "tuple"}:
            self._expect("<")
            return CqlType(lowered, tuple(self._params()))
        if lowered == "vector":
            self._expect("<")
            element = self._type()
            self._expect(",")
            size = int(self._word())
            self._expect(">")
            return CqlType("vector", (element,), size=size)
        if lowered in SIMPLE_TYPES:
            return CqlType(lowered)
        return self._udt(word)

    def _udt(self, name: str) -> CqlType:
        bare = name.split(".")[-1]
        if bare not in self.udts:
            raise UnsupportedType(f"Unknown CQL type {name!r}")
        if bare in self._seen:
            raise UnsupportedType(f"Recursive user type {name!r}")
        names, types = self.udts[bare]
        fields = tuple(
            (field_name, _Parser(type_text, self.udts, _seen=(*self._seen, bare)).parse())
            for field_name, type_text in zip(names, types, strict=True)
        )
        return CqlType("udt", fields=fields, udt_name=bare)


SIMPLE_TYPES = frozenset(
    {
        "ascii",
        "bigint",
        "blob",
        "boolean",
        "counter",
        "date",
        "decimal",
        "double",
        "duration",
        "float",
        "inet",
        "int",
        "smallint",
        "text",
        "time",
        "timestamp",
        "timeuuid",
        "tinyint",
        "uuid",
        "varchar",
        "varint",
    }
)


def parse_cql_type(text: str, udts: UdtDefinitions | None = None) -> CqlType:
    """The type tree of a CQL type string; UnsupportedType when it cannot be read."""
    return _Parser(text.strip(), udts or {}).parse()
