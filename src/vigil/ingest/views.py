"""``POST /v1/events``: translate HTTP to :func:`vigil.ingest.service.ingest` and back.

The body is read as a stream and counted: a declared ``Content-Length`` over the limit is
refused before reading, and a body that grows past it while streaming (chunked uploads) is
refused as soon as it does. Decoding, validation and the queue commit run in the thread pool so
the event loop keeps accepting connections while SQLite writes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from vigil.api import problems
from vigil.api.deps import get_runtime, require
from vigil.bus.queue import queue_of
from vigil.errors import PayloadTooLargeError
from vigil.identity.principal import Permission, Principal
from vigil.ingest import service
from vigil.ingest.parse import BodyFormat
from vigil.ingest.schemas import IngestResult, RejectedRecord
from vigil.metering.meter import meter_of

router = APIRouter(tags=["ingest"])

_JSON_TYPES = {"application/json", "text/json"}
_NDJSON_TYPES = {
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
    "application/json-lines",
}
_GZIP = {"gzip", "x-gzip"}

_BODY_DOC = {
    "content": {
        "application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
    "description": "One JSON object, an array of objects, or NDJSON; optionally gzip-encoded.",
}


def body_format(content_type: str | None) -> BodyFormat:
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media in _NDJSON_TYPES:
        return BodyFormat.NDJSON
    if media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return BodyFormat.JSON
    raise HTTPException(
        415, f"unsupported content type {media!r}; use application/json or application/x-ndjson"
    )


def is_gzip(content_encoding: str | None) -> bool:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in _GZIP:
        return True
    if encoding in ("identity", ""):
        return False
    raise HTTPException(415, f"unsupported content encoding {encoding!r}; use gzip or none")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/v1/events",
    status_code=202,
    response_model=IngestResult,
    summary="Send events (JSON object, array or NDJSON; gzip allowed; 10 MiB per request)",
    openapi_extra={"requestBody": _BODY_DOC},
)
async def post_events(
    request: Request, principal: Principal = Depends(require(Permission.EVENTS_WRITE))
) -> Any:
    runtime = get_runtime(request)
    settings = runtime.settings.ingest
    fmt = body_format(request.headers.get("content-type"))
    gzip = is_gzip(request.headers.get("content-encoding"))
    body = await read_body(request, settings.max_body_bytes)
    outcome = await run_in_threadpool(
        lambda: service.ingest(
            queue=queue_of(runtime),
            meter=meter_of(runtime),
            settings=settings,
            tenant_id=principal.tenant_id,
            body=body,
            fmt=fmt,
            gzip=gzip,
        )
    )
    batch = outcome.batch
    rejected = [
        RejectedRecord(index=r.index, field=r.field, error=r.error, line=r.line)
        for r in batch.rejected[: service.MAX_LISTED_REJECTIONS]
    ]
    if not batch.records:
        detail = "the body holds no records" if not batch.total else "no record is acceptable"
        errors = [
            {"field": f"body[{r.index}]" + (f".{r.field}" if r.field else ""), "message": r.error}
            for r in rejected
        ] or [{"field": "body", "message": detail}]
        return problems.problem(
            status=422,
            title="Invalid input",
            detail=detail,
            slug="invalid-input",
            instance=request.url.path,
            errors=errors,
            extra={
                "accepted": 0,
                "duplicates": 0,
                "rejected": [r.model_dump() for r in rejected],
                "rejected_total": len(batch.rejected),
            },
        )
    return IngestResult(
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        rejected=rejected,
        rejected_total=len(batch.rejected),
    )
