from tests.alerts.fixtures import db, factory, shared_engine, shared_url, tenant_db

__all__ = ["db", "factory", "shared_engine", "shared_url", "tenant_db"]
