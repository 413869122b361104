"""Every error answer of the API is built here: domain codes to HTTP statuses, in one place.

Bodies are `ErrorBody`: `{"error": <code>, "detail": <words>}` plus the fields that help the
caller act (current state and version of a conflict, the dead-letter id of a failed write).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.api.schemas import ErrorBody, LedgerEntryOut
from domain.errors import (
    AlreadyRetrying,
    Conflict,
    DatabaseUnavailable,
    DomainError,
    EntryDismissed,
    GuildNotSetUp,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidStatus,
    NotFound,
    PayloadInvalid,
    StaleEntry,
    StrictConflict,
    TransitionDeadLettered,
)
from domain.lifecycle import TransitionNotAllowed
from domain.persistence.database import DATABASE_ERRORS, is_unavailable
from domain.redaction import redact
from domain.transitions import TransitionFailed

log = logging.getLogger(__name__)

# Domain error code -> HTTP status. A code missing here falls back to its parent class's.
STATUS_BY_CODE: Mapping[str, int] = {
    DomainError.code: 422,
    InvalidInput.code: 422,
    TransitionNotAllowed.code: 422,
    NotFound.code: 404,
    Conflict.code: 409,
    StrictConflict.code: 409,
    IdempotencyKeyReused.code: 409,
    AlreadyRetrying.code: 409,
    EntryDismissed.code: 409,
    InvalidStatus.code: 409,
    GuildNotSetUp.code: 409,
    StaleEntry.code: 409,
    PayloadInvalid.code: 409,
    TransitionDeadLettered.code: 503,
    TransitionFailed.code: 503,
    DatabaseUnavailable.code: 503,
}
RETRY_AFTER_SECONDS = {DatabaseUnavailable.code: 30}

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


def status_for(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        code = cls.__dict__.get("code")
        if isinstance(code, str) and code in STATUS_BY_CODE:
            return STATUS_BY_CODE[code]
    return 422  # unreachable: DomainError itself is mapped


def error_response(status: int, error: str, detail: str, *,
                   headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail, **extra)
    return JSONResponse(body.model_dump(mode="json", exclude_unset=True), status_code=status,
                        headers=dict(headers) if headers else None)


def domain_error_response(exc: DomainError) -> JSONResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, StrictConflict):
        extra = {"current_state": exc.current_state, "current_version": exc.current_version,
                 "expected_state": exc.expected_state,
                 "expected_version": exc.expected_version}
    elif isinstance(exc, TransitionNotAllowed):
        extra = {"operation": exc.operation, "current_state": exc.current}
    elif isinstance(exc, StaleEntry):
        extra = {"recorded_state": exc.recorded_state, "recorded_version": exc.recorded_version,
                 "current_state": exc.current_state, "current_version": exc.current_version,
                 "transitions_since": exc.transitions_since,
                 "recent_transitions": [LedgerEntryOut.model_validate(h, from_attributes=True)
                                        for h in exc.recent_transitions]}
    elif isinstance(exc, TransitionDeadLettered):
        extra = {"dead_letter_id": exc.dead_letter_id, "reason_code": exc.reason_code}
    retry_after = RETRY_AFTER_SECONDS.get(exc.code)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return error_response(status_for(exc), exc.code, redact(str(exc)), headers=headers,
                          **extra)


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in parts)


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            message = f"the body is not valid JSON ({err.get('ctx', {}).get('error', '')})"
        errors.append({"loc": _loc(err.get("loc", ())), "message": message[:300]})
    summary = "; ".join(f"{e['loc']}: {e['message']}" for e in errors[:5])
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return error_response(422, InvalidInput.code, summary or "invalid request", errors=errors)


def _console_page(request: Request, status: int, title: str, detail: str) -> Response | None:
    """On the console's paths (when it is mounted), errors are its HTML pages with its
    headers, not the API's JSON."""
    if not request.url.path.startswith("/console") \
            or getattr(request.app.state, "console", None) is None:
        return None
    from bot.console.routes import error_page_with_headers

    return error_page_with_headers(request, status, title, detail)


def install_error_handlers(app: FastAPI) -> None:
    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return _console_page(request, 400, "Refused", str(exc)) \
            or domain_error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _console_page(request, 404, "Not found", "There is no such page.") \
            or validation_error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        page = _console_page(request, exc.status_code, "Not found" if exc.status_code == 404
                             else "Refused", "There is no such page." if exc.status_code == 404
                             else "This request was refused.")
        if page is not None:
            return page
        if exc.status_code == 400:
            # FastAPI's answer to a body json.loads cannot read (too deep, huge integers):
            # bad input like any other.
            return error_response(422, InvalidInput.code,
                                  "the body could not be parsed as JSON")
        error = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, error, str(exc.detail),
                              headers=exc.headers)

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if not is_unavailable(exc):
            raise exc  # a real bug: ServerErrorMiddleware answers 500 and logs it
        log.warning("database unavailable answering %s %s: %s", request.method,
                    request.url.path, type(exc).__name__)
        return _console_page(request, 503, "Unavailable", "The database is unavailable "
                             "right now; try again in a moment.") \
            or domain_error_response(DatabaseUnavailable(type(exc).__name__))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        correlation_id = request.scope.get("state", {}).get("correlation_id", "-")
        log.error("unexpected error answering %s %s (correlation %s)", request.method,
                  request.url.path, correlation_id, exc_info=exc)
        return _console_page(request, 500, "Something went wrong", "The error is logged "
                             f"(correlation id {correlation_id}).") \
            or error_response(500, "internal_error",
                              f"unexpected server error; correlation id {correlation_id}")

    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    for cls in (*DATABASE_ERRORS, OSError):  # reads outside TransitionService.apply
        app.add_exception_handler(cls, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for error statuses, all with the ErrorBody shape."""
    described = {
        401: "Missing or wrong bearer token, or a token in the query string",
        404: "Unknown id (or an id of another guild)",
        409: "Conflict with the stored state (see `error`)",
        413: "Request body over 64 KiB",
        422: "Invalid input: bad JSON, wrong types, out-of-range ids, an operation not "
             "allowed from the current state",
        503: "`dead_lettered`: the write could not be made and is kept as dead letter "
             "`dead_letter_id`; `database_unavailable`: nothing was changed, try again "
             "after Retry-After seconds",
    }
    return {s: {"model": ErrorBody, "description": described[s]} for s in statuses}
