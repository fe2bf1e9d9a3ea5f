"""A table's arrivals over the last day in ``GET /reconciliation/tables[/{name}]``: how long the
CDC pipeline took to copy the writes cdcrecon saw in flight (``reconciliation.arrivals``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from reconciliation.arrivals import WINDOW, ArrivalStats, last_day

#: Where a list's root serializer keeps every table's numbers (one query for the whole page).
CACHE = "_arrivals_last_day"


class ArrivalSerializer(serializers.Serializer[Any]):
    """Read-only; its ``source`` is the table itself (``source="*"``)."""

    window_hours = serializers.IntegerField(
        read_only=True, help_text="The window of these numbers: the last 24 hours."
    )
    count = serializers.IntegerField(
        read_only=True,
        help_text="In-flight differences that arrived in the window (closed because the copy "
        "was found equal).",
    )
    p50_seconds = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Median seconds from the source write to the read that found the copy; "
        "null without arrivals.",
    )
    p99_seconds = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="99th percentile of the same; set the CDC lag budget above it (README). "
        "Null without arrivals.",
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        stats = self._stats(instance.name)
        return {
            "window_hours": int(WINDOW.total_seconds() // 3600),
            "count": stats.count,
            "p50_seconds": stats.p50_seconds,
            "p99_seconds": stats.p99_seconds,
        }

    def _stats(self, table: str) -> ArrivalStats:
        if not isinstance(self.root, serializers.ListSerializer):
            return last_day([table]).get(table, ArrivalStats())
        cache: dict[str, ArrivalStats] | None = getattr(self.root, CACHE, None)
        if cache is None:
            cache = last_day()
            setattr(self.root, CACHE, cache)
        return cache.get(table, ArrivalStats())
