"""`python -m bot api`: the HTTP API alone, e.g. as replicas beside one bot process.

Refuses to start without API_TOKEN (exit 2, one line on stderr). Prints `API listening on
http://HOST:PORT` once it serves. SIGTERM and SIGINT stop it cleanly (exit 0): requests in
flight finish, the pool is closed, an embedded PostgreSQL is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from bot.container import open_container
from bot.settings import Settings
from domain.redaction import redact


def register(sub: Any) -> None:
    parser = sub.add_parser("api", help="serve the HTTP API (needs API_TOKEN)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # The web stack is imported here, not at the top: `python -m bot dlq ...` starts
    # without it.
    from bot.api.server import ApiStartError

    console_on = settings.console_off_reason() is None and settings.discord_token is not None
    if settings.api_token is None and not console_on:
        print("lifeline: API_TOKEN is not set; the HTTP API refuses to start without it "
              "(and the console's settings are not set either)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(settings))
    except ApiStartError as exc:
        print(f"lifeline: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # e.g. the database is unreachable at start
        print(f"lifeline: the HTTP API could not start: {type(exc).__name__}: "
              f"{redact(str(exc), limit=300)}", file=sys.stderr)
        return 1


async def _serve(settings: Settings) -> int:
    from bot.api.server import ApiServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_container(settings, application_name="lifeline-api") as container:
        # The console too, when its settings and DISCORD_TOKEN are set: who is staff comes
        # from Discord's REST API, with the bot token (a replica has no gateway).
        staff = None
        if settings.console_off_reason() is None and settings.discord_token is not None:
            from bot.console.staff_rest import RestStaff

            staff = RestStaff(container.guilds, settings.discord_token.get_secret_value(),
                              settings.discord_api_base)
        server = ApiServer(container, host=settings.api_host, port=settings.api_port,
                           console_staff=staff)
        await server.start()
        if settings.api_token is not None:
            print(f"API listening on {server.url}", flush=True)
        if staff is not None:
            print(f"Staff console at {settings.console_base_url}/console", flush=True)
        stopping = asyncio.create_task(stop.wait())
        serving = asyncio.create_task(server.wait())
        try:
            await asyncio.wait({stopping, serving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            serving.cancel()
            await server.stop()
        if not stop.is_set():
            print("lifeline: the HTTP API stopped unexpectedly", file=sys.stderr)
            return 1
    return 0
