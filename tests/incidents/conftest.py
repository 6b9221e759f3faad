from tests.alerts.fixtures import db, factory, shared_engine, shared_url, tenant_db
from tests.alerts.server import service

__all__ = ["db", "factory", "service", "shared_engine", "shared_url", "tenant_db"]
