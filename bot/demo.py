"""`python -m bot sandbox`: the whole story on a local Discord look-alike, no account needed.

Starts the database (embedded unless DATABASE_URL), the sandbox, the real bot and the HTTP
API in one process, plays a scripted story and prints what each member did, what the bot
answered and what the log channel shows. `--serve` keeps everything running, and keeps the
sandbox's world in DATA_DIR/sandbox/world.json: started again, the demo skips the story and
the bot catches up with the saved server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.api.server import ApiServer, ApiStartError
from bot.console.staff import GatewayStaff
from bot.container import Container, open_container
from bot.demo_serve import print_serve_help, with_console
from bot.demo_start import DemoStartError, until_ready
from bot.demo_transcript import Transcript
from bot.discord_bot import LifelineBot, build_bot
from bot.settings import Settings
from bot.wiring import build_services
from domain.commands import TransitionCommand
from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, Source, TransitionNotAllowed
from sandbox import (
    Guild,
    InteractionHandle,
    Perm,
    Sandbox,
    SandboxConfig,
    WorldFileError,
    client_overrides,
)

STARTED, COMPLETED = 8, 2  # MemberFlags bits: started / completed onboarding
DEMO_GUILD = "Lifeline Demo"

STORM_ROUND = 40  # concurrent writes in a round of the conflict storm, half through each process


class Demo:
    def __init__(self, container: Container, sandbox: Sandbox, bot: LifelineBot,
                 api: ApiServer, token: str, guild: Guild) -> None:
        self.container, self.sandbox, self.bot, self.api = container, sandbox, bot, api
        self.token, self.guild = token, guild
        self.names: dict[int, str] = {}
        self.t = Transcript(guild, self.names)
        self.owner = guild.owner_id
        self.staff = 0

    # ---- helpers ----------------------------------------------------------------------

    def name(self, user_id: int) -> str:
        return self.names.get(user_id, str(user_id))

    async def state(self, user_id: int) -> str:
        member = await self.container.transitions.get_member(self.guild.id, user_id)
        return member.state.value if member else "(none)"

    async def wait_state(self, user_id: int, *states: str) -> str:
        for _ in range(500):
            current = await self.state(user_id)
            if current in states:
                return current
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{self.name(user_id)} never reached {states}")

    async def command(self, user_id: int, line: str, options: dict[str, Any] | None = None
                      ) -> str:
        return (await self.command_handle(user_id, line, options))[1]

    async def command_handle(self, user_id: int, line: str,
                             options: dict[str, Any] | None = None
                             ) -> tuple[InteractionHandle, str]:
        """Run a slash command and print its answer; the handle, to press its buttons."""
        shown = " ".join(f"{k}:{self.t.option(k, v)}" for k, v in (options or {}).items())
        self.t.say(self.name(user_id), f"/{line} {shown}".rstrip())
        handle = self.sandbox.slash_command(self.guild, user_id, line, options or {})
        message = await handle.wait_message(timeout=30)
        text = message.content or ""
        for embed in message.embeds or []:
            text += "\n" + "\n".join(x for x in (embed.get("title"), embed.get("description"))
                                     if x)
        for line_ in text.strip().splitlines()[:12]:
            self.t.say("bot", line_)
        return handle, text

    async def web_app(self, session: aiohttp.ClientSession, user_id: int, operation: str
                      ) -> tuple[int, dict[str, Any]]:
        url = (f"{self.api.url}/api/v1/guilds/{self.guild.id}/members/{user_id}/transitions")
        async with session.post(url, json={"operation": operation,
                                           "idempotency_key": uuid.uuid4().hex},
                                headers={"Authorization": f"Bearer {self.token}"}) as resp:
            return resp.status, await resp.json()

    async def onboard(self, name: str) -> int:
        member = self.sandbox.member_join(self.guild, None, name, pending=True)
        user = member.user.id
        self.names[user] = name
        self.t.say(name, "joins the server")
        await self.wait_state(user, "joined")
        self.sandbox.member_update(self.guild, user, flags=STARTED)
        await self.wait_state(user, "onboarding_in_progress")
        self.sandbox.member_update(self.guild, user, flags=STARTED | COMPLETED)
        await self.wait_state(user, "role_eligible")
        self.sandbox.member_update(self.guild, user, pending=False)
        await self.wait_state(user, "rules_accepted")
        self.t.say(name, "onboards and accepts the rules -> rules_accepted")
        return user

    # ---- the story --------------------------------------------------------------------

    async def play(self) -> None:
        guild = self.guild
        staff_role = guild.role_named("Staff").id
        staff = self.sandbox.member_join(guild, None, "sam-staff", pending=False,
                                         roles=[staff_role])
        self.staff = staff.user.id
        self.names.update({self.owner: "owner", self.staff: "sam-staff"})
        for command in ("member", "dlq", "lifeline"):
            self.sandbox.grant_command(guild, command, staff_role)

        self.t.chapter("The owner sets Lifeline up")
        await self.command(self.owner, "lifeline setup", {
            "log_channel": self.sandbox.channel("mod-log", guild).id,
            "verified_role": guild.role_named("Verified").id, "staff_role": staff_role})

        self.t.chapter("Members join and onboard; the web app verifies one")
        alice = await self.onboard("alice")
        await self.command(alice, "verify")
        async with aiohttp.ClientSession() as http:
            status, body = await self.web_app(http, alice, "verify")
            self.t.say("web app", f"POST .../transitions verify -> {status} "
                                  f"{body.get('member', {}).get('state', body)}")
            await self.sandbox.wait_until(
                lambda: any(c.user_id == alice and c.action == "add"
                            for c in self.sandbox.role_changes), timeout=15)
            self.t.say("sandbox", "alice was granted the Verified role")

            self.t.chapter("The web app's verification races a member's leave")
            bob = await self.onboard("bob")
            await self.command(bob, "verify")
            self.t.say("bob", "leaves the server at the moment the web app verifies him")
            self.sandbox.member_leave(guild, bob)
            status, body = await self.web_app(http, bob, "verify")
            final = await self.wait_state(bob, "left_guild")
            self.t.say("web app", f"verify -> {status} "
                                  f"{body.get('member', {}).get('state') or body.get('detail')}")
            history = await self.container.transitions.history(guild.id, bob, 3)
            self.t.say("ledger", "bob: " + ", ".join(h.operation.value
                                                     for h in reversed(history))
                       + f" -> {final}: one serial order, nothing lost")

            self.t.chapter("A conflict storm on one member exhausts retries")
            carol = await self.onboard("carol")
            await self.command(carol, "verify")
            # One attempt per write for this chapter (TRANSITION_MAX_ATTEMPTS=1), so a lost
            # compare-and-set is final at once and the storm is short. Writers inside one
            # process take turns per member; the race is between two processes: this one
            # (its HTTP API) and a second Lifeline replica on the same database.
            policy = self.container.transitions.policy
            self.container.transitions.policy = replace(policy, max_attempts=1)
            try:
                outcomes = await self.storm(http, carol)
            finally:
                self.container.transitions.policy = policy
            rounds = sum(outcomes.values()) // STORM_ROUND
            self.t.say("web app", f"{sum(outcomes.values())} concurrent verify/reverify writes "
                       f"({rounds} round{'s' if rounds > 1 else ''} of {STORM_ROUND}, until "
                       "both operations had a dead letter) through two Lifeline processes, "
                       "1 attempt each: "
                       + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))

        self.t.chapter("Staff remediate from Discord")
        current = await self.state(carol)
        wanted = wanted_op(current)
        self.t.say("ledger", f"carol is {current}; open dead letters for `{wanted}` can be "
                             "replayed from here")
        await self.command(self.staff, "dlq list", {"operation": wanted})
        page = await self.container.remediation.page(guild.id, status="open", limit=100)
        replayable = next((e for e in page.items if e.operation == wanted
                           and e.reason_code == "retries_exhausted"), None)
        others = [e for e in page.items if replayable is None or e.id != replayable.id]
        if replayable is not None:
            await self.command(self.staff, "dlq show", {"id": str(replayable.id)})
            handle, text = await self.command_handle(self.staff, "dlq retry",
                                                     {"id": str(replayable.id)})
            if "is stale" in text:
                # The storm moved carol on since the entry was recorded: replaying it now
                # would apply it to carol as she is. Staff look, and keep her as she is.
                self.t.say(self.name(self.staff), "[Cancel]: carol is right as she is")
                await self.sandbox.press_button(handle, "dlq:cancel", self.staff).wait_reply()
                self.t.say("bot", "Not replayed.")
        for entry in others[:2]:
            await self.command(self.staff, "dlq resolve", {
                "id": str(entry.id), "note": "storm noise: carol's state is correct now"})
        await self.command(self.staff, "dlq stats")
        await self.refused_role_grant()

        self.t.chapter("What ops read in #mod-log")
        await self.wait_mirror_drained()
        for message in self.sandbox.messages("mod-log", guild):
            for line in message.lines():  # the mirror's lines are in embeds
                self.t.say("#mod-log", line)

    async def refused_role_grant(self) -> None:
        """The Verified role above Lifeline's own: the refused grant is seen, fixed, retried."""
        self.t.chapter("Discord refuses a role grant; staff fix the cause and retry it")
        guild, verified = self.guild, self.guild.role_named("Verified")
        await self.wait_mirror_drained()  # carol's role changes went through first
        top = max(r.position for r in guild.roles.values())
        self.sandbox.edit_role(guild, verified, position=top)
        self.t.say("owner", "drags Verified above Lifeline's role in Server Settings → Roles")
        dave = await self.onboard("dave")
        await self.command(dave, "verify")
        await self.command(self.staff, "member verify", {"user": dave})
        for _ in range(300):  # the worker records the refusal right after Discord's answer
            if (await self.container.deliveries.summary(guild.id)).failed:
                break
            await asyncio.sleep(0.05)
        await self.command(self.staff, "dlq deliveries")
        self.sandbox.edit_role(guild, self.sandbox.bot_role(guild), position=top)
        self.t.say("owner", "drags Lifeline's role back above Verified")
        await self.command(self.staff, "dlq deliveries-retry")
        await self.sandbox.wait_until(lambda: any(
            c.user_id == dave and c.action == "add" for c in self.sandbox.role_changes),
            timeout=15)
        self.t.say("sandbox", "dave was granted the Verified role")

    async def storm(self, http: aiohttp.ClientSession, user: int) -> Counter[str]:
        """Concurrent writers on one member until both operations have a dead letter (so that
        whichever state the member ends in, one of them can be replayed), 20 rounds at most.

        Half go through this process's HTTP API, half through a second replica: its own
        TransitionService on the same database, as a second `python -m bot api` would be.
        """
        # The replica writes with one attempt too, like this process during the storm.
        settings = self.container.settings.model_copy(update={
            "transition_max_attempts": self.container.transitions.policy.max_attempts})
        replica = build_services(settings, self.container.db,
                                 metrics=self.container.metrics).transitions
        outcomes: Counter[str] = Counter()

        async def through_replica(op: str) -> int:
            try:
                await replica.apply(TransitionCommand(
                    guild_id=self.guild.id, user_id=user, operation=Operation(op),
                    source=Source.API, idempotency_key=uuid.uuid4().hex))
            except TransitionNotAllowed:
                return 422
            except TransitionDeadLettered:
                return 503
            return 200

        dead_lettered: set[str] = set()
        for _ in range(20):
            ops = ["verify", "reverify"] * (STORM_ROUND // 4)  # through each process
            statuses = await asyncio.gather(
                *(self.web_app(http, user, op) for op in ops),
                *(through_replica(op) for op in ops))
            for op, status in zip(ops + ops, statuses, strict=True):
                code = status[0] if isinstance(status, tuple) else status
                outcomes[{200: "applied", 422: "refused (not allowed)",
                          503: "dead-lettered"}.get(code, str(code))] += 1
                if code == 503:
                    dead_lettered.add(op)
            if len(dead_lettered) == 2:
                break
        return outcomes

    async def wait_mirror_drained(self) -> None:
        """Until no delivery of the guild is waiting (log lines and role changes alike)."""
        for _ in range(3000):
            if not await self.container.services.stores.ops.undelivered_outbox_rows(
                    self.guild.id):
                return
            await asyncio.sleep(0.05)


def wanted_op(state: str) -> str:
    return "verify" if state == "verification_pending" else "reverify"


def seed(sandbox: Sandbox) -> Guild:
    return sandbox.create_guild(
        DEMO_GUILD, owner_name="owner", channels=("general", "welcome", "mod-log"),
        roles={"Member": 0, "Verified": 0,
               "Staff": int(Perm.KICK_MEMBERS | Perm.BAN_MEMBERS)})


async def main(settings: Settings, *, serve: bool = False, port: int = 8765) -> int:
    # The story's transcript is not interleaved with log lines (its dead letters are on
    # purpose); --serve brings the configured level back once the story is told.
    logging.getLogger().setLevel(max(settings.log_level_number, logging.ERROR))
    token = settings.api_token.get_secret_value() if settings.api_token \
        else secrets.token_urlsafe(24)
    settings = settings.model_copy(update={"api_token": SecretStr(token),
                                           "outbox_poll_seconds": 0.1})
    # --serve keeps the sandbox's world in DATA_DIR/sandbox/world.json: a restarted demo
    # finds the same server, and the bot catches up with it; the scripted story keeps nothing.
    sandbox = Sandbox(SandboxConfig(data_dir=settings.data_dir / "sandbox" if serve else None))
    try:
        await sandbox.start(port=port if serve else 0)
    except WorldFileError as exc:
        print(f"lifeline: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken: most likely a demo already running
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"lifeline: the sandbox cannot listen on 127.0.0.1:{port}: {reason} (is a demo "
              "already running? choose another port with --port)", file=sys.stderr)
        return 2
    if serve:
        settings = with_console(settings, sandbox)
    try:
        async with open_container(settings, application_name="lifeline-demo") as container:
            await run(container, sandbox, settings, token, serve=serve)
    except ApiStartError as exc:
        print(f"lifeline: {exc} (choose another port with API_PORT)", file=sys.stderr)
        return 2
    except DemoStartError as exc:
        hint = (f" (is a demo already running in {settings.data_dir}? stop it, or start "
                "this one beside it with another DATA_DIR, e.g. DATA_DIR=.data-2)"
                if exc.log_in_use else "")
        print(f"lifeline: {exc}{hint}", file=sys.stderr)
        return 1
    finally:
        await sandbox.stop()
    return 0


async def run(container: Container, sandbox: Sandbox, settings: Settings, token: str, *,
              serve: bool) -> None:
    resumed = demo_guild(sandbox) if sandbox.resumed else None
    guild = resumed or seed(sandbox)
    bot = build_bot(container, guild_ready_timeout=0.1)
    api = ApiServer(container, host=settings.api_host,
                    port=settings.api_port if serve else 0,
                    gateway_status=lambda: bot.gateway_connected,
                    console_staff=GatewayStaff(bot, container.guilds) if serve else None)
    with client_overrides(sandbox.base_url):
        await api.start()
        bot_task = asyncio.create_task(bot.start(sandbox.token))
        try:
            await until_ready(bot, bot_task)
            where = "DATABASE_URL" if settings.database_url \
                else f"embedded PostgreSQL in {settings.data_dir / 'pg'}"
            print(f"Lifeline demo: sandbox Discord at {sandbox.base_url}, HTTP API at "
                  f"{api.url}, {where}")
            if resumed is not None and sandbox.store is not None:
                print(f"Resumed the saved sandbox world ({sandbox.store.path}): {guild.name} "
                      f"with {len(guild.members)} members and "
                      f"{len(sandbox.world.messages)} messages; Lifeline catches up with "
                      "whatever changed while it was down. Delete that file (and "
                      f"{settings.data_dir / 'pg'}) to start from scratch.", flush=True)
            else:
                demo = Demo(container, sandbox, bot, api, token, guild)  # type: ignore[arg-type]
                await demo.play()
            if serve:
                # The console's overview shows what the story just did, not only after the
                # worker's next refresh (every 5 minutes).
                await container.services.overview.refresh()
                logging.getLogger().setLevel(settings.log_level_number)
                await print_serve_help(container, sandbox, api, token, guild)
                stop = asyncio.Event()
                from bot.cli_run import stop_on_signals

                stop_on_signals(stop)
                await stop.wait()
            print("\nThe demo ended; everything is stopped.")
        finally:
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await bot_task
            await api.stop()


def demo_guild(sandbox: Sandbox) -> Guild | None:
    """The demo's guild in a world loaded from disk, if it has one."""
    return next((g for g in sandbox.world.guilds.values() if g.name == DEMO_GUILD), None)
