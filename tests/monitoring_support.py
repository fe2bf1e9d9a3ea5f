"""Helpers of the monitoring tests: /metrics text parsing and the exported names."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support import REPO

MONITORING = REPO / "docker" / "monitoring"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """{(sample name, labels): value} for every sample in a /metrics text."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def exported_names() -> set[str]:
    """Every sample name the collector can expose (counters with _total, histogram parts)."""
    from reconciliation import metrics

    names: set[str] = set()
    for family in metrics.ReconciliationCollector().describe():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{part}" for part in ("bucket", "count", "sum")}
        else:
            names.add(family.name)
    return names
