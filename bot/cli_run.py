"""`python -m bot run`: the real bot (and the HTTP API in the same loop when API_TOKEN is set).
`python -m bot sandbox`: the demo against a local Discord look-alike."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from bot.container import open_container
from bot.settings import Settings

log = logging.getLogger(__name__)


def shard_ids(value: str) -> list[int]:
    try:
        ids = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("shard ids are numbers separated by commas, "
                                         "like 0,1") from None
    if not ids or any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError("give at least one shard id >= 0")
    return ids


def positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError("must be a whole number >= 1")
    return int(value)


def port(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > 65535:
        raise argparse.ArgumentTypeError("must be a port number, 0 to 65535 (0: any free one)")
    return int(value)


def register(sub: Any) -> None:
    run_parser = sub.add_parser("run", help="run the bot against Discord (needs DISCORD_TOKEN)")
    run_parser.add_argument("--shard-count", type=positive,
                            help="total number of shards of the bot")
    run_parser.add_argument("--shard-ids", type=shard_ids,
                            help="the shards this process runs, like 0,1 (needs --shard-count)")
    run_parser.set_defaults(handler=run)
    demo = sub.add_parser("sandbox", help="the demo: sandbox Discord + bot + scripted story")
    demo.add_argument("--serve", action="store_true",
                      help="keep everything running and print how to inject events by hand")
    demo.add_argument("--port", type=port, default=8765, help="sandbox port (--serve)")
    demo.set_defaults(handler=run_demo)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.discord_token is None:
        print("lifeline: DISCORD_TOKEN is not set: create a bot at "
              "https://discord.com/developers/applications and put its token in .env "
              "(or run `python -m bot sandbox` for the demo)", file=sys.stderr)
        return 2
    if args.shard_ids is not None and args.shard_count is None:
        print("lifeline: --shard-ids needs --shard-count", file=sys.stderr)
        return 2
    if args.shard_ids and args.shard_count and max(args.shard_ids) >= args.shard_count:
        print("lifeline: every shard id must be below --shard-count", file=sys.stderr)
        return 2
    return asyncio.run(serve(settings, shard_count=args.shard_count, shard_ids=args.shard_ids))


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.demo import main as demo_main

    return asyncio.run(demo_main(settings, serve=args.serve, port=args.port))


def point_discord_py_at(settings: Settings) -> None:
    """The two overrides a sandbox needs; both unset in production."""
    import discord.gateway
    import discord.http
    import yarl

    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def serve(settings: Settings, *, shard_count: int | None = None,
                shard_ids: list[int] | None = None, ready: asyncio.Event | None = None) -> int:
    """Run bot (+ API) until SIGINT/SIGTERM; close everything in reverse order."""
    from bot.api.server import ApiServer, ApiStartError
    from bot.console.staff import GatewayStaff
    from bot.discord_bot import build_bot

    point_discord_py_at(settings)
    stop = asyncio.Event()
    stop_on_signals(stop)
    assert settings.discord_token is not None
    name = "lifeline-bot" + (f"-shards-{','.join(map(str, shard_ids))}" if shard_ids else "")
    async with open_container(settings, application_name=name) as container:
        bot = build_bot(container, shard_count=shard_count, shard_ids=shard_ids)
        api: ApiServer | None = None
        console_on = settings.console_off_reason() is None
        if settings.api_token is not None or console_on:
            api = ApiServer(container, host=settings.api_host, port=settings.api_port,
                            gateway_status=lambda: bot.gateway_connected,
                            console_staff=GatewayStaff(bot, container.guilds))
            try:
                await api.start()
            except ApiStartError as exc:
                print(f"lifeline: {exc}", file=sys.stderr)
                return 2
            if settings.api_token is not None:
                print(f"API listening on {api.url}", flush=True)
            else:
                log.info("the HTTP API is off (API_TOKEN is not set); the console is on")
            off = settings.console_off_reason()
            if off is None:
                print(f"Staff console at {settings.console_base_url}/console", flush=True)
            else:
                log.info("%s", off)
        else:
            log.info("the HTTP API is off (API_TOKEN is not set); %s",
                     settings.console_off_reason())
        bot_task = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
        ready_task = asyncio.create_task(bot.wait_until_ready())
        stop_task = asyncio.create_task(stop.wait())
        code = 0
        try:
            done, _ = await asyncio.wait({bot_task, ready_task, stop_task},
                                         return_when=asyncio.FIRST_COMPLETED)
            if ready_task in done:
                log.info("logged in as %s; ready", bot.user)
                print(f"Lifeline is running as {bot.user}", flush=True)
                if ready is not None:
                    ready.set()
                done, _ = await asyncio.wait({bot_task, stop_task},
                                             return_when=asyncio.FIRST_COMPLETED)
            if bot_task in done:
                code = _report_bot_end(bot_task)
        finally:
            for task in (ready_task, stop_task):
                task.cancel()
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await bot_task
            if api is not None:
                await api.stop()
        log.info("stopped cleanly")
        return code


def _report_bot_end(task: asyncio.Task[None]) -> int:
    import discord  # here, not at the top: `python -m bot dlq ...` starts without it

    error = task.exception()
    if error is None:
        return 0
    if isinstance(error, discord.LoginFailure):
        print("lifeline: Discord rejected DISCORD_TOKEN (check the bot token)", file=sys.stderr)
        return 2
    if isinstance(error, discord.PrivilegedIntentsRequired):
        print("lifeline: enable the Server Members intent for the bot in the developer portal",
              file=sys.stderr)
        return 2
    if isinstance(error, discord.HTTPException | OSError):
        print(f"lifeline: cannot reach Discord: {error}", file=sys.stderr)
        return 1
    print(f"lifeline: the bot stopped: {type(error).__name__}: {error}", file=sys.stderr)
    return 1
