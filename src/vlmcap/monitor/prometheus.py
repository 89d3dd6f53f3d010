"""Metric values from Prometheus' text format (a server's ``/metrics``) in one small shape.

``MetricValues`` keeps, per metric family name, one value per label set (gauges and counters)
or ``(count, sum)`` per label set (histograms). Counters are named without their ``_total``
suffix, as ``prometheus_client``'s parser and vLLM's ``LLM.get_metrics()`` both name them, so
the offline engine's metrics (``engine_source``) and a server's end up alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

#: Suffix of a counter's sample in the text format (dropped from the family name).
TOTAL_SUFFIX = "_total"
Labels = dict[str, str]


@dataclass(frozen=True)
class Histogram:
    """One label set of a histogram: how many observations and their sum."""

    labels: Labels
    count: float
    sum: float


@dataclass
class MetricValues:
    """Gauges and counters (``scalars``) and histograms, by family name."""

    scalars: dict[str, list[tuple[Labels, float]]] = field(default_factory=dict)
    histograms: dict[str, list[Histogram]] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.scalars) | set(self.histograms)

    def add(self, name: str, labels: Labels, value: float) -> None:
        self.scalars.setdefault(_family(name), []).append((labels, value))

    def add_histogram(self, name: str, labels: Labels, count: float, total: float) -> None:
        self.histograms.setdefault(name, []).append(Histogram(labels, count, total))

    def total(self, name: str, where: Callable[[Labels], bool] | None = None) -> float | None:
        """Sum of ``name`` over its label sets (those ``where`` accepts); ``None`` if absent."""
        samples = self.scalars.get(_family(name))
        if samples is None:
            return None
        return sum(value for labels, value in samples if where is None or where(labels))

    def histogram_totals(self, name: str) -> tuple[float, float] | None:
        """``(count, sum)`` of histogram ``name`` over its label sets; ``None`` if absent."""
        series = self.histograms.get(name)
        if series is None:
            return None
        return sum(h.count for h in series), sum(h.sum for h in series)


def parse_text(text: str) -> MetricValues:
    """Parse Prometheus' text exposition format (raises ``ValueError`` on malformed text)."""
    metrics = MetricValues()
    for family in text_string_to_metric_families(text):
        if family.type == "histogram":
            counts: dict[frozenset[tuple[str, str]], float] = {}
            sums: dict[frozenset[tuple[str, str]], float] = {}
            for sample in family.samples:
                key = frozenset(sample.labels.items())
                if sample.name == family.name + "_count":
                    counts[key] = sample.value
                elif sample.name == family.name + "_sum":
                    sums[key] = sample.value
            for key, count in counts.items():
                metrics.add_histogram(family.name, dict(key), count, sums.get(key, 0.0))
            continue
        wanted = family.name + TOTAL_SUFFIX if family.type == "counter" else family.name
        for sample in family.samples:
            if sample.name == wanted:
                metrics.add(family.name, sample.labels, sample.value)
    return metrics


def _family(name: str) -> str:
    return name.removesuffix(TOTAL_SUFFIX)
