"""Tables of the pipeline domain."""

from __future__ import annotations
