"""5. The log-channel mirror under Discord's rate limit, with the real discord.py bot.

A guild set up with a log channel (mirror level dead_letters, which includes remediation
records) has 1,000 open dead letters (members waiting in verification_pending). Staff retry
the whole signature (RemediationService.retry_group): each retry queues its mirror line in
the outbox, in the same statement as the outcome. The real bot (discord.py, in process,
against the sandbox enforcing 5 messages per 5 s on the channel) delivers them with its
outbox worker, which packs consecutive lines into the embeds of one message (10 embeds of
up to 4,096 characters, 6,000 in all). The clock starts when the retry starts and stops when
the last record is visible in the sandbox channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from typing import Any

from pydantic import SecretStr

from bench.bulk_retry import DEAD_LETTERS, FIRST_USER, SIGNATURE
from bench.common import ACTOR, Context, Report, Target, services
from bench.ledger import seed_members
from bot.container import Container
from bot.discord_bot import build_bot
from bot.settings import Settings
from domain.lifecycle import Source, State
from sandbox import Sandbox, SandboxConfig, client_overrides

NAME = "mirror"
TITLE = "Log-channel mirror of 1,000 remediation records under 5 messages / 5 s"
RECORD = re.compile(r"retried \[?#(\d+)\b")
POST = "/channels/{channel_id}/messages"


async def seed(ctx: Context, guild_id: int, count: int) -> None:
    conn = await ctx.connect()
    try:
        await seed_members(conn, guild_id, count, (State.VERIFICATION_PENDING,), FIRST_USER)
        # Entry numbers of an installation that has been running a while.
        await conn.execute("SELECT setval('dead_letters_id_seq', 4200000)")
        await conn.execute(DEAD_LETTERS, guild_id, SIGNATURE, count, FIRST_USER)
    finally:
        await conn.close()


def channel_records(sandbox: Sandbox, channel_id: int) -> list[int]:
    """Record numbers in the channel, in order: the lines are in the messages' embeds."""
    return [int(m.group(1)) for message in sandbox.messages(channel_id)
            for line in message.lines() if (m := RECORD.search(line))]


async def run(ctx: Context) -> Report:
    count = 200 if ctx.quick else 1_000
    config = SandboxConfig()
    # With the staff console on (as a deployment with it would run), so each line carries
    # its link to the entry's console page: longer lines, fewer a message.
    settings = Settings(_env_file=None, discord_client_id="1",  # type: ignore[call-arg]
                        discord_client_secret=SecretStr("bench-client-secret"),
                        console_session_secret=SecretStr("b" * 32),
                        console_url="https://lifeline.example.org")
    report = ctx.report(NAME, TITLE, {
        "records": count, "rate_limit": f"{config.message_rate_limit} messages per "
                                        f"{config.message_rate_per:g} s per channel",
        "outbox_poll_seconds": settings.outbox_poll_seconds,
        "records_from": "RemediationService.retry_group over open `verify` dead letters",
        "bot": "discord.py LifelineBot in process, outbox worker with default policy",
        "console_links": "on (each line links its entry's console page)"})
    await ctx.reset()
    db = ctx.database(pool_size=12)
    container = Container(settings, db, services(db))
    try:
        async with Sandbox(config) as sandbox:
            guild = sandbox.create_guild("Bench", channels=("general", "mod-log"))
            channel = sandbox.channel("mod-log", guild).id
            await container.guilds.setup(guild.id, log_channel_id=channel, staff_role_ids=[],
                                         verified_role_id=None, eligibility_role_id=None,
                                         mirror_level="dead_letters")
            bot = build_bot(container, guild_ready_timeout=0.05)
            with client_overrides(sandbox.base_url):
                task = asyncio.create_task(bot.start(sandbox.token))
                try:
                    await asyncio.wait_for(bot.wait_until_ready(), timeout=30)
                    # Seeded once the bot's reconcile-on-connect is over: these members exist
                    # only in the database, and reconciling would record them as left.
                    await asyncio.sleep(1.0)
                    await seed(ctx, guild.id, count)
                    started = time.perf_counter()
                    result = await container.remediation.retry_group(guild.id, SIGNATURE, ACTOR,
                                                               Source.STAFF)
                    queued = time.perf_counter() - started
                    first: list[float] = []

                    def done() -> bool:
                        if not first and sandbox.messages(channel):
                            first.append(time.perf_counter() - started)
                        return len(set(channel_records(sandbox, channel))) >= count

                    await sandbox.wait_until(done, timeout=240, what="every record visible")
                    elapsed = time.perf_counter() - started
                    await asyncio.sleep(1.0)  # anything sent twice would show up now
                finally:
                    await bot.close()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            seen = channel_records(sandbox, channel)
            messages = sandbox.messages(channel)
            posts = Counter(c.status for c in sandbox.calls_to("POST", POST))
            nonce_hits = len(sandbox.duplicates_prevented)
    finally:
        await db.dispose()
    conn = await ctx.connect()
    try:
        expected = [int(r[0]) for r in await conn.fetch(
            "SELECT payload->>'dead_letter_id' FROM outbox WHERE guild_id = $1 AND kind = "
            "'mirror' ORDER BY id", guild.id)]
    finally:
        await conn.close()
    duplicates = sum(n - 1 for n in Counter(seen).values() if n > 1)
    in_order = seen == expected
    lines = [len(m.lines()) for m in messages]
    embeds = [len(m.embeds) for m in messages]
    chars = [len(m.content) + sum(len(e.get("description") or "") for e in m.embeds)
             for m in messages]
    metrics: dict[str, Any] = {
        "seconds_to_last_record": round(elapsed, 1), "seconds_to_first_message":
            round(first[0], 2) if first else None,
        "seconds_to_queue_all": round(queued, 2), "retry_group": {
            "resolved": result.resolved, "failed": result.failed, "skipped": result.skipped},
        "messages": len(messages), "lines_per_message_mean": round(count / len(messages), 1)
        if messages else None, "lines_per_message_max": max(lines, default=0),
        "embeds_per_message_max": max(embeds, default=0),
        "chars_per_message_max": max(chars, default=0),
        "post_statuses": {str(k): v for k, v in posts.items()},
        "nonce_duplicates_prevented": nonce_hits, "duplicates": duplicates,
        "records_visible": len(set(seen)), "order_kept": in_order,
        "one_message_per_record_would_take_s": (count / config.message_rate_limit - 1)
        * config.message_rate_per}
    report.metrics = metrics
    report.row("seconds until the last record is visible",
               f"{elapsed:.1f} (first message after {metrics['seconds_to_first_message']} s; "
               f"all {count:,} queued after {queued:.1f} s: {result.resolved:,} resolved, "
               f"{result.failed:,} failed)")
    report.row("messages sent", f"{len(messages)} (mean {metrics['lines_per_message_mean']} "
                                f"lines in up to {metrics['embeds_per_message_max']} embeds, "
                                f"max {metrics['chars_per_message_max']} chars); POST "
                                f"statuses {metrics['post_statuses']}")
    report.row("duplicates / order kept", f"{duplicates} / {in_order}")
    report.targets += [
        Target("seconds until the last record is visible", round(elapsed, 1), 60, "<=", "s"),
        Target("duplicate records in the channel", duplicates, 0, "<="),
        Target("records out of order (0 = order kept)", 0 if in_order else 1, 0, "<="),
    ]
    return report
