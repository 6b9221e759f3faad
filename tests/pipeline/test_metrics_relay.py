"""Metric increments made in another process arrive exactly in this one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from vigil.pipeline.metrics_relay import DeltaTracker, apply_deltas


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram, Gauge]:
    return (
        Counter("t_detections", "d", ["level"], registry=registry),
        Histogram("t_latency_seconds", "l", buckets=(0.1, 0.5, 1.0), registry=registry),
        Gauge("t_depth", "g", registry=registry),
    )


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if line and not line.startswith("#") and "_created" not in line
    ]


def test_counters_histograms_and_gauges_round_trip() -> None:
    child, parent = CollectorRegistry(), CollectorRegistry()
    c_counter, c_hist, c_gauge = _metrics(child)
    _metrics(parent)
    tracker = DeltaTracker(child)
    for round_ in range(3):
        c_counter.labels("high").inc(2)
        c_counter.labels("low").inc(round_)
        for value in (0.05, 0.3, 0.7, 3.0, 0.3):
            c_hist.observe(value)
        c_gauge.set(10 - round_)
        apply_deltas(tracker.take(), parent)
    assert _exposition(parent) == _exposition(child)
    assert tracker.take() == []  # nothing changed since
