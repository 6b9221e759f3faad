"""The alerts domain: detections become alerts a person can work.

* :mod:`.intake` — the :class:`~vigil.alerts.intake.DetectionRecord` contract with the pipeline.
* :mod:`.service` — ``record_detections``: fingerprint dedup inside a suppression window,
  idempotent by detection id, ``threat_detected`` events, hand-over to incident grouping.
* :mod:`.entity` — the entity (host/user precedence, correlation group-by), fingerprint, context.
* :mod:`.states` — the lifecycle table; :mod:`.lifecycle` — transitions, assignment, comments,
  bulk actions (transition rows, ledger entries, ``alert_updated`` events).
* :mod:`.query` and :mod:`.paging` — filtered, sorted lists with keyset cursors; one alert in full.
* :mod:`.views` — ``/v1/alerts``.
"""
