"""What routes receive: the container, the correlation id, and the id path parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPBearer

from bot.container import Container
from domain.commands import MAX_SNOWFLAKE, new_correlation_id
from domain.errors import InvalidInput

# Declares the security scheme in OpenAPI; the check itself is RequestGuard's, which runs
# before the body is read or validated (so a stranger learns nothing from a 422).
bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <API_TOKEN>")


@dataclass(frozen=True)
class ApiContext:
    container: Container
    gateway_status: Callable[[], bool] | None = None


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.lifeline
    return context


def get_container(request: Request) -> Container:
    return get_context(request).container


def get_correlation_id(request: Request) -> str:
    value = request.scope.get("state", {}).get("correlation_id")
    return str(value) if value else new_correlation_id()


ContainerDep = Annotated[Container, Depends(get_container)]
CorrelationId = Annotated[str, Depends(get_correlation_id)]
GuildId = Annotated[int, Path(ge=1, le=MAX_SNOWFLAKE, description="Discord guild id")]
UserId = Annotated[int, Path(ge=1, le=MAX_SNOWFLAKE, description="Discord user id")]
EntryId = Annotated[int, Path(ge=1, le=MAX_SNOWFLAKE, description="dead-letter id")]


def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not declare is refused (422), like an unknown body
    field: a misspelt filter (`?stauts=open`) must not silently return everything."""
    from fastapi.routing import APIRoute

    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed: set[str] = set()
    pending = [route.dependant]
    while pending:  # the route's own parameters and those of its dependencies
        dependant = pending.pop()
        allowed.update(param.alias for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise InvalidInput("unknown query parameter(s): " + ", ".join(unknown)[:200])
