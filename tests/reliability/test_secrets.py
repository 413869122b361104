"""The bot token and the API token never reach logs, the database or Discord messages."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, State
from domain.persistence.database import Database
from sandbox import Sandbox, SandboxConfig
from tests.bot.world import eventually
from tests.helpers import cmd, drive, next_user
from tests.scale.procs import API_TOKEN, start_api, start_bot
from tests.wiring import ProcessServices

BOT_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"  # fake, Discord-shaped
TABLES = ("members", "member_transitions", "dead_letters", "remediation_actions",
          "guild_settings", "outbox", "outbox_attempts")


async def test_tokens_appear_in_no_log_no_row_and_no_message(migrated: str,
                                                             clean_db: Database) -> None:
    async with Sandbox(SandboxConfig(token=BOT_TOKEN)) as sandbox:
        guild = sandbox.create_guild("Secrets", channels=("general", "mod-log"),
                                     roles={"Verified": 0})
        log_channel = sandbox.channel("mod-log", guild).id
        await ProcessServices(clean_db).guilds.setup(
            guild.id, log_channel_id=log_channel, staff_role_ids=[],
            verified_role_id=guild.role_named("Verified").id, eligibility_role_id=None,
            mirror_level="all")
        bot = await start_bot("bot", migrated, sandbox.api_url, sandbox.gateway_url,
                              BOT_TOKEN, 1, 0, LOG_LEVEL="DEBUG")
        api, base = await start_api("api", migrated, LOG_LEVEL="DEBUG")
        try:
            sandbox.member_join(guild, None, "tester")
            # A dead letter for staff to dismiss: the web app's verify whose every
            # compare-and-set loses (through the fault seam of a writer of its own).
            user = next_user()
            writer = ProcessServices(clean_db)
            await drive(writer, user, State.VERIFICATION_PENDING, guild.id)
            writer.faults.lose_cas()
            with pytest.raises(TransitionDeadLettered):
                await writer.transitions.apply(cmd(Operation.VERIFY, user, guild.id))

            async def dead() -> int:
                async with clean_db.autocommit() as conn:
                    return int((await conn.execute(text(
                        "SELECT count(*) FROM dead_letters"))).scalar_one())
            await eventually(dead, what="a dead letter")
            async with httpx.AsyncClient(timeout=30) as client:
                good = {"Authorization": f"Bearer {API_TOKEN}"}
                url = f"{base}/api/v1/guilds/{guild.id}/dead-letters"
                assert (await client.get(url, params={"token": API_TOKEN})).status_code == 401
                assert (await client.get(url, params={"access_token": API_TOKEN},
                                         headers={"Authorization": "Bearer wrong-" + API_TOKEN})
                        ).status_code == 401
                items = (await client.get(url, headers=good)).json()["items"]
                resp = await client.post(f"{url}/{items[0]['id']}/dismiss", headers=good,
                                         json={"actor_id": "900000000000000001",
                                               "note": f"pasted by mistake: {BOT_TOKEN}"})
                assert resp.status_code == 200

            async def mirrored() -> bool:
                async with clean_db.autocommit() as conn:
                    return not (await conn.execute(text(
                        "SELECT count(*) FROM outbox WHERE status <> 'delivered'"))
                    ).scalar_one()
            await eventually(mirrored, timeout=30, what="the mirror delivered")
        finally:
            await bot.terminate()
            await api.terminate()
        logs = "".join(bot.output + api.output)
        # What people read (mirror lines are in embeds) and the raw embeds, whatever the field.
        messages = "\n".join(m.text + str(m.embeds) for m in sandbox.messages(log_channel))
    assert "DEBUG" in logs and "Lifeline is running" in logs  # the logs were captured
    async with clean_db.autocommit() as conn:
        dumped = [str(r) for table in TABLES
                  for r in (await conn.execute(text(f"SELECT * FROM {table}"))).all()]
    rows = "\n".join(dumped)
    assert "dismiss" in rows and "pasted by mistake" in rows
    assert "pasted by mistake" in messages  # the note's mirror line was searched too
    for token in (BOT_TOKEN, API_TOKEN):
        assert token not in logs, "a token reached the logs"
        assert token not in rows, "a token reached the database"
        assert token not in messages, "a token reached Discord"
