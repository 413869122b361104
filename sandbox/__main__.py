"""``python -m sandbox --port 8765``: run a sandbox until interrupted, with a demo guild.

``--data-dir DIR`` keeps the world in ``DIR/world.json`` across restarts (the demo guild
is only created when there is no saved world); delete that file to start fresh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from .config import SandboxConfig
from .persistence import WorldFileError
from .scenario import Sandbox


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument(
        "--token", default="sandbox-token", help="the bot token the sandbox accepts"
    )
    parser.add_argument(
        "--shards", type=int, default=1, help="shard count advertised by GET /gateway/bot"
    )
    parser.add_argument("--no-demo", action="store_true", help="start with no guild")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the world in DATA_DIR/world.json across restarts (default: in memory)",
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="an OAuth2 redirect URI registered for the application (repeatable)",
    )
    parser.add_argument(
        "--client-secret",
        default="sandbox-client-secret",
        help="the OAuth2 client secret of the application",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    config = SandboxConfig(
        token=args.token,
        shard_count=args.shards,
        data_dir=args.data_dir,
        oauth_client_secret=args.client_secret,
        oauth_redirect_uris=list(args.redirect_uri),
    )
    sandbox = Sandbox(config)
    try:
        await sandbox.start(args.port, args.host)
    except WorldFileError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken (a sandbox or a demo already runs there)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {reason} (choose another "
              "port with --port)", file=sys.stderr)
        return 2
    try:
        print(f"sandbox REST:     {sandbox.api_url}")
        print(f"sandbox gateway:  {sandbox.gateway_url}")
        print(f"sandbox control:  {sandbox.base_url}/_sandbox/")
        print(f"bot token:        {sandbox.token}")
        print(f"application id:   {sandbox.application_id} (the OAuth2 client id)")
        print(f"OAuth2 authorize: {sandbox.base_url}/oauth2/authorize")
        print(f"OAuth2 token:     {sandbox.api_url}/oauth2/token")
        if sandbox.resumed:
            world = sandbox.world
            print(
                f"saved world:      {sandbox.store.path if sandbox.store else ''} "
                f"({len(world.guilds)} guilds, {len(world.messages)} messages)"
            )
        elif not args.no_demo:
            guild = sandbox.seed_demo()
            channels = ", ".join(f"#{c.name}={c.id}" for c in guild.channels.values())
            print(f"demo guild:       {guild.name} id={guild.id} owner={guild.owner_id} {channels}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        # Only now: a signal sent by whoever waits for this line stops the sandbox cleanly.
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
    finally:
        await sandbox.stop()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    sys.exit(asyncio.run(serve(args)))


if __name__ == "__main__":
    main()
