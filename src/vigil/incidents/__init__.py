"""The incidents domain: related alerts become incidents with SLAs, escalation and a timeline.

* :mod:`.grouping` — the automatic grouping policy (correlation id, entity key, window,
  severity threshold).
* :mod:`.states` — the incident lifecycle; :mod:`.service` — working an incident by hand.
* :mod:`.sla` — time-to-acknowledge / time-to-resolve per severity, breach flags.
* :mod:`.escalation` — escalation policies; :mod:`.escalation_worker` — the worker that fires
  due levels exactly once and evaluates SLA breaches.
* :mod:`.timeline`, :mod:`.events` — timeline entries and outbox events.
* :mod:`.query`, :mod:`.views` — ``/v1/incidents`` and ``/v1/escalation-policies``.
"""
