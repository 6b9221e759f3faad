"""HTTP routes of the identity domain: sessions (/v1/auth) and identity management (/v1/users,
/v1/roles, /v1/keys, /v1/tenant, /v1/access-rules)."""

from __future__ import annotations

from fastapi import APIRouter

from vigil.identity.views_admin import router as admin_router
from vigil.identity.views_auth import router as auth_router

router = APIRouter()
router.include_router(auth_router)
router.include_router(admin_router)
