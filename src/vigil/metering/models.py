"""Tables of the metering domain."""

from __future__ import annotations
