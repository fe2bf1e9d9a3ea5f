"""Disk-backed streams with bounded memory: an external sort by token, and a plain spool.

``SortedRuns`` takes records ``(token, key bytes, row bytes)`` in any order.  Every
``run_size`` records it sorts what it holds by token and writes it to a temporary file in
``marshal`` blocks; ``merged()`` then streams all records in token order with a k-way
``heapq.merge`` that holds one block per run (runs beyond ``MAX_FAN_IN`` are first merged
into bigger runs).  Memory is ``run_size`` records while writing and
``min(runs, MAX_FAN_IN) × BLOCK`` records while reading, whatever the table's size.
"""

from __future__ import annotations

import heapq
import marshal
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import IO, Any

BLOCK = 1000
MAX_FAN_IN = 64
_by_token = itemgetter(0)


_LENGTH = struct.Struct("<I")


def _dump_block(block: list[Any], handle: IO[bytes]) -> None:
    # Length-prefixed: marshal.load() on a file reads in tiny pieces and is several times
    # slower than one read() and marshal.loads().
    data = marshal.dumps(block)
    handle.write(_LENGTH.pack(len(data)))
    handle.write(data)


def _load_block(handle: IO[bytes]) -> list[Any] | None:
    header = handle.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    return marshal.loads(handle.read(_LENGTH.unpack(header)[0]))  # type: ignore[no-any-return]


def _write_blocks(records: Iterable[Any], handle: IO[bytes]) -> None:
    block: list[Any] = []
    for record in records:
        block.append(record)
        if len(block) >= BLOCK:
            _dump_block(block, handle)
            block = []
    if block:
        _dump_block(block, handle)


def _read_blocks(path: str) -> Iterator[Any]:
    with open(path, "rb", buffering=1 << 16) as handle:
        while (block := _load_block(handle)) is not None:
            yield from block


class SortedRuns:
    """An external sort of ``(token, …)`` records, in a private temporary directory."""

    def __init__(self, run_size: int = 100_000, directory: str | None = None) -> None:
        """Runs go to a private temporary directory, or to ``directory`` (which the caller
        owns and removes: how a child process hands its runs to the engine)."""
        self.run_size = run_size
        self._owned = tempfile.TemporaryDirectory(prefix="cdcrecon-") if directory is None else None
        self.directory = self._owned.name if self._owned is not None else str(directory)
        self._buffer: list[Any] = []
        self._runs: list[str] = []
        self.count = 0

    def add(self, record: Any) -> None:
        self._buffer.append(record)
        self.count += 1
        if len(self._buffer) >= self.run_size:
            self._flush()

    def extend(self, records: list[Any]) -> None:
        self._buffer.extend(records)
        self.count += len(records)
        if len(self._buffer) >= self.run_size:
            self._flush()

    def _new_path(self) -> str:
        return os.path.join(self.directory, f"run-{os.getpid()}-{len(self._runs):06d}")

    def _flush(self) -> None:
        if not self._buffer:
            return
        self._buffer.sort(key=_by_token)
        path = self._new_path()
        with open(path, "wb", buffering=1 << 16) as handle:
            _write_blocks(self._buffer, handle)
        self._runs.append(path)
        self._buffer = []

    def merged(self) -> Iterator[Any]:
        """Every record, in token order (records with equal tokens in no particular order)."""
        if not self._runs:  # it all fitted in memory
            self._buffer.sort(key=_by_token)
            yield from self._buffer
            return
        self._flush()
        runs = self._runs
        while len(runs) > MAX_FAN_IN:
            runs = [
                self._merge_to_file(runs[i : i + MAX_FAN_IN])
                for i in range(0, len(runs), MAX_FAN_IN)
            ]
        # Records compare as tuples, token first: no key function on the hot path.
        yield from heapq.merge(*(_read_blocks(p) for p in runs))

    def _merge_to_file(self, paths: list[str]) -> str:
        path = os.path.join(self.directory, f"merged-{os.path.basename(paths[0])}-{len(paths)}")
        with open(path, "wb", buffering=1 << 16) as handle:
            _write_blocks(heapq.merge(*(_read_blocks(p) for p in paths)), handle)
        for old in paths:
            os.remove(old)
        return path

    def finish(self) -> list[str]:
        """Write what is buffered as a last run; the run files, for ``adopt``."""
        self._flush()
        return list(self._runs)

    def adopt(self, runs: list[str], count: int) -> None:
        """Take over sorted runs written by another SortedRuns (another process)."""
        self._runs.extend(runs)
        self.count += count

    def close(self) -> None:
        self._buffer = []
        if self._owned is not None:
            self._owned.cleanup()

    def __enter__(self) -> SortedRuns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Spool:
    """An append-only, read-once list of records on disk (the differences of a pass).

    In a private temporary file, or in the file ``path`` (which the caller removes): how a
    child process hands its differences to the engine (``Spool.reopen``).
    """

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            self._file: IO[bytes] = tempfile.TemporaryFile(prefix="cdcrecon-diffs-")
        else:
            self._file = open(path, "w+b")  # noqa: SIM115 - closed by close()
        self._block: list[Any] = []
        self.count = 0

    @classmethod
    def reopen(cls, path: str, count: int) -> Spool:
        """The spool another process wrote to ``path`` (and flushed), for reading."""
        spool = cls.__new__(cls)
        spool._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        spool._block = []
        spool.count = count
        return spool

    def flush(self) -> None:
        if self._block:
            _dump_block(self._block, self._file)
            self._block = []
        self._file.flush()

    def add(self, record: Any) -> None:
        self._block.append(record)
        self.count += 1
        if len(self._block) >= BLOCK:
            _dump_block(self._block, self._file)
            self._block = []

    def extend(self, records: list[Any]) -> None:
        self._block.extend(records)
        self.count += len(records)
        if len(self._block) >= BLOCK:
            _dump_block(self._block, self._file)
            self._block = []

    def records(self) -> Iterator[Any]:
        """The records in the order added."""
        for batch in self.batches():
            yield from batch

    def batches(self, size: int = BLOCK) -> Iterator[list[Any]]:
        """The records in the order added, ``size`` at a time."""
        self.flush()
        self._file.seek(0)
        batch: list[Any] = []
        while (block := _load_block(self._file)) is not None:
            for record in block:
                batch.append(record)
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
