"""Every Prometheus metric Vigil exports, defined once per process.

Domains import the metric they move; ``/metrics`` serves :data:`REGISTRY`. Label values are
bounded sets (route templates, not raw paths; levels; outcomes) so cardinality stays small.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "vigil_http_requests_total",
    "HTTP requests by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "vigil_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
EVENTS_ACCEPTED = Counter(
    "vigil_events_accepted_total", "Events accepted by ingest.", registry=REGISTRY
)
EVENTS_REJECTED = Counter(
    "vigil_events_rejected_total", "Event records rejected by ingest.", registry=REGISTRY
)
EVENTS_DUPLICATE = Counter(
    "vigil_events_duplicate_total",
    "Records ignored because their event_id was already queued.",
    registry=REGISTRY,
)
INGEST_BYTES = Counter(
    "vigil_ingest_bytes_total", "Request body bytes ingested.", registry=REGISTRY
)
EVENTS_PROCESSED = Counter(
    "vigil_events_processed_total", "Events the detection pipeline processed.", registry=REGISTRY
)
DETECTIONS = Counter(
    "vigil_detections_total", "Detections by rule level.", ["level"], registry=REGISTRY
)
ALERTS_RAISED = Counter(
    "vigil_alerts_raised_total", "New alerts by severity.", ["severity"], registry=REGISTRY
)
ALERTS_DEDUPLICATED = Counter(
    "vigil_alerts_deduplicated_total",
    "Detections folded into an open alert with the same fingerprint.",
    registry=REGISTRY,
)
INCIDENTS_OPENED = Counter(
    "vigil_incidents_opened_total", "Incidents opened by severity.", ["severity"], registry=REGISTRY
)
SLA_BREACHES = Counter(
    "vigil_sla_breaches_total",
    "SLA breaches by kind (acknowledge, resolve) and severity.",
    ["kind", "severity"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("vigil_queue_depth", "Events queued and not yet processed.", registry=REGISTRY)
QUEUE_LAG_SECONDS = Gauge(
    "vigil_queue_lag_seconds",
    "Age of the oldest unprocessed event in the queue.",
    registry=REGISTRY,
)
QUEUE_DEAD_LETTERED = Counter(
    "vigil_queue_dead_lettered_total",
    "Queue records moved to the dead-letter stream (the workers gave up on them).",
    registry=REGISTRY,
)
QUEUE_DEAD_LETTERS = Gauge(
    "vigil_queue_dead_letters",
    "Records in the queue's dead-letter stream, every tenant's (Redis Streams queue; "
    "refreshed by the queue housekeeping of the processes that detect).",
    registry=REGISTRY,
)
PIPELINE_BATCH_SECONDS = Histogram(
    "vigil_pipeline_batch_seconds",
    "Time to process one batch from the queue (detect, alert, commit).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
EVENT_TO_ALERT_SECONDS = Histogram(
    "vigil_event_to_alert_seconds",
    "From an event's acceptance to its alert being committed.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "vigil_notifications_total",
    "Notification delivery attempts by channel type and outcome.",
    ["channel_type", "outcome"],
    registry=REGISTRY,
)
NOTIFICATION_DEAD_LETTERS = Gauge(
    "vigil_notification_dead_letters",
    "Deliveries waiting in the dead-letter list.",
    registry=REGISTRY,
)
RULES_LOADED = Gauge("vigil_rules_loaded", "Sigma rules loaded.", registry=REGISTRY)
RULES_FAILED = Gauge("vigil_rules_failed", "Rule files that failed to load.", registry=REGISTRY)
AUTH_FAILURES = Counter(
    "vigil_auth_failures_total",
    "Failed authentications by reason.",
    ["reason"],
    registry=REGISTRY,
)
ACCESS_DENIED = Counter("vigil_access_denied_total", "Authorisation denials.", registry=REGISTRY)
RATE_LIMITED = Counter("vigil_rate_limited_total", "Requests answered 429.", registry=REGISTRY)
AUDIT_ENTRIES = Counter(
    "vigil_audit_entries_total", "Entries appended to the audit ledger.", registry=REGISTRY
)

# --- identity and metering ------------------------------------------------------------------------
RATE_LIMITER_ERRORS = Counter(
    "vigil_rate_limiter_errors_total",
    "Requests let through because the rate limiter's store (Redis) was unavailable.",
    registry=REGISTRY,
)
USAGE_FLUSHES = Counter(
    "vigil_usage_flushes_total",
    "Flushes of in-memory usage counters to the database, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
QUOTA_EXCEEDED = Counter(
    "vigil_quota_exceeded_total",
    "Requests refused by a tenant quota, by metric.",
    ["metric"],
    registry=REGISTRY,
)
