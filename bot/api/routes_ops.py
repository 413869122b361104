"""/healthz and /metrics: for load balancers and Prometheus, no token needed."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from bot.api.deps import get_context
from bot.api.schemas import HealthOut, IngestOut
from bot.prometheus import CONTENT_TYPE, PrometheusMetrics
from domain.persistence.ops import OpsStore
from domain.redaction import redact

log = logging.getLogger(__name__)

DB_CHECK_SECONDS = 2.0

router = APIRouter(tags=["operations"])


async def check_database(ops: OpsStore) -> str:
    """'ok' or 'unreachable'. /healthz needs no token: the reason (which names the
    database's host and port) goes to the log, not to the answer."""
    try:
        async with asyncio.timeout(DB_CHECK_SECONDS):
            await ops.ping()
    except TimeoutError:
        log.warning("healthz: no answer to SELECT 1 within %gs", DB_CHECK_SECONDS)
        return "unreachable"
    except Exception as exc:
        log.warning("healthz: the database is unreachable: %s",
                    redact(f"{type(exc).__name__}: {exc}", limit=300))
        return "unreachable"
    return "ok"


@router.get("/healthz", response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "a part is failing; "
                                                                "`failing` names it"}},
            summary="Database reachable, and the Discord gateway when the bot is in-process")
async def healthz(request: Request) -> JSONResponse:
    context = get_context(request)
    database = await check_database(context.container.services.stores.ops)
    if context.gateway_status is None:
        gateway = "not_in_process"
    else:
        try:
            gateway = "connected" if context.gateway_status() else "disconnected"
        except Exception:
            log.exception("gateway status check failed")
            gateway = "disconnected"
    ingest = None
    ingestion = context.container.ingestion
    if ingestion is not None:
        status = ingestion.status()
        ingest = IngestOut(
            lag_seconds=round(status.lag_seconds, 3), backlog=status.backlog,
            dropped=status.dropped, refusing=status.refusing,
            unhealthy_after_seconds=context.container.settings.ingest_lag_unhealthy_seconds)
    failing = [part for part, bad in (
        ("database", database != "ok"), ("gateway", gateway == "disconnected"),
        ("ingest", ingest is not None and (ingest.refusing or ingest.lag_seconds
                                           > ingest.unhealthy_after_seconds)))
        if bad]
    body = HealthOut(status="unhealthy" if failing else "ok", database=database,
                     gateway=gateway, ingest=ingest, failing=failing)  # type: ignore[arg-type]
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if failing else 200)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {
                "schema": {"type": "string"}}},
                "description": "Prometheus text exposition format"}},
            summary="Prometheus metrics of this process, with database gauges read now")
async def metrics(request: Request) -> Response:
    container = get_context(request).container
    exporter = request.app.state.prometheus
    assert isinstance(exporter, PrometheusMetrics)
    return Response(await exporter.scrape(container.services.stores.ops,
                                          container.ingestion),
                    media_type=CONTENT_TYPE)
