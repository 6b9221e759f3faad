"""Carry metric increments from the detection child process to the serving process.

The child counts into its own copy of :data:`vigil.obs.metrics.REGISTRY` (detections, alerts
raised, incidents, batch and latency histograms). :func:`take_deltas` turns what changed since
the last call into a small picklable list; the parent applies it to the same metrics with
:func:`apply_deltas`, so ``/metrics`` of the serving process shows the whole pipeline.
Counters and histograms move by their deltas, gauges take the child's value.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import CollectorRegistry

from vigil.obs.metrics import REGISTRY

#: (metric name, label values, sample suffix, le or "", value)
Delta = tuple[str, tuple[str, ...], str, str, float]


class DeltaTracker:
    """Remembers the last values it saw of every sample of a registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._registry = registry
        self._last: dict[tuple[str, tuple[str, ...], str, str], float] = {}

    def take(self) -> list[Delta]:
        out: list[Delta] = []
        for family in self._registry.collect():
            if family.type not in ("counter", "histogram", "gauge"):
                continue
            for sample in family.samples:
                suffix = sample.name[len(family.name) :]
                if suffix == "_created":
                    continue
                labels = dict(sample.labels)
                le = labels.pop("le", "") if family.type == "histogram" else ""
                key = (family.name, tuple(labels.values()), suffix, le)
                value = float(sample.value)
                if family.type == "gauge":
                    if self._last.get(key) != value:
                        out.append((*key, value))
                else:
                    delta = value - self._last.get(key, 0.0)
                    if delta:
                        out.append((*key, delta))
                self._last[key] = value
        return out


def _collector(name: str, registry: CollectorRegistry) -> Any:
    names: dict[str, Any] = registry._names_to_collectors  # no public lookup by name
    return names.get(name) or names.get(name + "_total")


def apply_deltas(deltas: list[Delta], registry: CollectorRegistry = REGISTRY) -> None:
    """Apply another process's increments to this process's metrics."""
    for name, label_values, suffix, le, value in deltas:
        metric = _collector(name, registry)
        if metric is None:
            continue
        target = metric.labels(*label_values) if label_values else metric
        if isinstance(metric, Counter):
            target.inc(value)
        elif isinstance(metric, Gauge):
            target.set(value)
        elif isinstance(metric, Histogram):
            if suffix == "_sum":
                target._sum.inc(value)
            elif suffix == "_bucket":
                # Exposed buckets are cumulative; the stored ones are not: add the delta to the
                # bucket and take it off the next one up.
                bounds = target._upper_bounds
                bound = float("inf") if le == "+Inf" else float(le)
                index = bounds.index(bound)
                target._buckets[index].inc(value)
                if index + 1 < len(bounds):
                    target._buckets[index + 1].inc(-value)
