"""Observability: Prometheus metrics, health checks, structured JSON logs."""
