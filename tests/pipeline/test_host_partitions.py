"""The detection thread built by the host routes correlation inputs by the configured count."""

from __future__ import annotations

from pathlib import Path

from vigil.config import load_settings
from vigil.pipeline.worker import DetectionThread
from vigil.store.migrate import upgrade
from vigil.wiring import assemble


def test_detection_thread_uses_configured_partitions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade(url)
    settings = load_settings(
        home=tmp_path,
        database_url=url,
        pipeline={"worker_mode": "thread", "correlation_partitions": 5, "hot_reload": False},
    )
    runtime = assemble(settings, role="worker")
    try:
        detection = [w for w in runtime.workers if isinstance(w, DetectionThread)]
        assert len(detection) == 1
        assert detection[0].pipeline.detector.partitions == 5
    finally:
        runtime.engine.dispose()
