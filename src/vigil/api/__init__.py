"""The HTTP API: app factory, problem+json errors, auth dependencies; routers live per domain."""
