"""HTTP routes of the metering domain: translate HTTP to service calls and back, nothing else."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
