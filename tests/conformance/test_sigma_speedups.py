"""The engine gives the same detections with the C kernels (``vigil._speedups``) as without.

All SigmaHQ rules loaded; every regression event, plus mutated copies (lists, nulls, numbers as
text, case flips), is matched by an engine built with the extension and by one built and run
with the pure Python code.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from vigil import speedups
from vigil.detect.sigma import context
from vigil.detect.sigma.engine import SigmaEngine
from vigil.events.model import EventRecord

from .test_sigma_codegen import engine, events, mutate

__all__ = ["engine", "events"]  # the fixtures, shared with the codegen conformance test

if speedups.NATIVE is None:
    pytest.skip("vigil._speedups is not built or VIGIL_PURE_PYTHON is set", allow_module_level=True)


def detections(engine: SigmaEngine, samples: list[dict[str, Any]]) -> list[list[str | None]]:
    return [[r.info.id for r in engine.match(EventRecord(f))] for f in samples]


def uses_kernel(bucket: Any) -> bool:
    """Does a bucket's generated code call the C prelowering (a global bound as ``_lower*``)?"""
    return any(name.startswith("_lower") for name in bucket.run.__globals__)


def test_same_detections_with_and_without_extension(
    engine: SigmaEngine, events: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    rnd = random.Random(20261122)
    samples = events + [mutate(rnd.choice(events), rnd) for _ in range(2000)]
    native = detections(engine, samples)
    # Built and run pure: the generated bucket code reads speedups.NATIVE when it is generated,
    # EventContext its kernel when it runs.
    with monkeypatch.context() as m:
        m.setattr(speedups, "NATIVE", None)
        m.setattr(context, "_native_lower_join", None)
        pure_engine = SigmaEngine(engine.rules)
        pure = detections(pure_engine, samples)
        assert not any(map(uses_kernel, pure_engine._merged.values()))
    assert any(map(uses_kernel, engine._merged.values()))  # (some buckets prelower nothing)
    assert native == pure
    assert sum(map(bool, native)) > 200
