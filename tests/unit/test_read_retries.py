"""Transient Cassandra errors are retried per statement with bounded back-off (tenacity);
anything else fails at once (reconciliation.connections.retrying)."""

from __future__ import annotations

import pytest
from cassandra import OperationTimedOut, ReadTimeout, Unauthorized, Unavailable
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import OverloadedErrorMessage

from reconciliation import connections


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch) -> None:
    monkeypatch.setattr(connections, "READ_RETRY_SECONDS", 60.0)
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda seconds: None)


class Flaky:
    """A read that fails with ``errors`` in turn, then answers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "rows"


@pytest.mark.parametrize(
    "error",
    [
        OperationTimedOut("timed out"),
        ReadTimeout("read timeout", consistency=1, required_responses=1, received_responses=0),
        Unavailable("unavailable", consistency=1, required_replicas=1, alive_replicas=0),
        OverloadedErrorMessage(0x1001, "overloaded", None),
        NoHostAvailable("no host", {"127.0.0.1:9042": ConnectionRefusedError()}),
    ],
    ids=["timeout", "read-timeout", "unavailable", "overloaded", "no-host"],
)
def test_a_transient_error_is_retried_until_the_read_succeeds(error) -> None:
    read = Flaky(error, error)

    assert connections.retrying(read) == "rows"
    assert read.calls == 3


def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    read = Flaky(*[OperationTimedOut(f"try {i}") for i in range(10)])

    with pytest.raises(OperationTimedOut, match="try 3"):
        connections.retrying(read)
    assert read.calls == connections.READ_ATTEMPTS


def test_a_permanent_error_is_not_retried() -> None:
    read = Flaky(Unauthorized("no"))

    with pytest.raises(Unauthorized):
        connections.retrying(read)
    assert read.calls == 1


def test_each_transient_error_is_told_to_the_hook_before_its_retry() -> None:
    # (a read-rate cap backs off on them: reconciliation.ratelimit)
    first, second = OperationTimedOut("one"), OverloadedErrorMessage(0x1001, "two", None)
    heard: list[BaseException] = []

    assert connections.retrying(Flaky(first, second), on_transient=heard.append) == "rows"
    assert heard == [first, second]


def test_a_permanent_error_is_not_told_to_the_hook() -> None:
    heard: list[BaseException] = []
    with pytest.raises(Unauthorized):
        connections.retrying(Flaky(Unauthorized("no")), on_transient=heard.append)
    assert heard == []
