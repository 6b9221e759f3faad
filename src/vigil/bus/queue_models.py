"""Tables of the durable ingest queue."""

from __future__ import annotations
