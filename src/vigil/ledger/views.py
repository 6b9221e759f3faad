"""HTTP routes of the audit ledger (/v1/audit)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
