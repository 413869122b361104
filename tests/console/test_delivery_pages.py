"""The console's failed-deliveries page over the real bot: a role grant Discord refused is
shown with its cause and attempts, and retried as the logged-in user."""

from __future__ import annotations

from sqlalchemy import text

from bot.console.security import SESSION_COOKIE
from domain.commands import TransitionCommand
from domain.console_sessions import ConsoleSessions
from domain.lifecycle import Source, State
from tests.bot.world import World, eventually
from tests.console.support import BASE, console_client
from tests.helpers import next_user, path_to


async def _failed_grant(world: World) -> int:
    high = world.sandbox.add_role(world.guild, "Verified (above Lifeline)", position=50)
    await world.command(world.owner, "lifeline setup", {
        "log_channel": world.log_channel, "verified_role": high.id,
        "staff_role": world.staff_role})
    user = next_user()
    world.sandbox.member_join(world.guild, user, "dora", pending=False)
    await world.wait_state(user, "joined")
    for op in path_to(State.VERIFIED)[1:]:
        await world.container.transitions.apply(TransitionCommand(
            guild_id=world.guild.id, user_id=user, operation=op, source=Source.BOT,
            idempotency_key=f"console-test:{user}:{op.value}"))

    async def failed() -> int | None:
        async with world.container.db.autocommit() as conn:
            return (await conn.execute(text(
                "SELECT id FROM outbox WHERE kind = 'role_sync' AND status = "
                "'dead_lettered'"))).scalar()
    return await eventually(failed, what="the refused grant")


async def test_a_refused_grant_is_shown_with_its_cause_and_retried(world: World) -> None:
    delivery = await _failed_grant(world)
    async with console_client(world) as http:
        new = await ConsoleSessions(world.container.services.stores.console_sessions).login(
            world.staff, "staffer")
        http.cookies.set(SESSION_COOKIE, new.cookie_value)
        page = await http.get(f"/console/g/{world.guild.id}/deliveries")
        assert page.status_code == 200
        assert f"D{delivery}" in page.text
        assert "Lifeline&#39;s role is below the verified role" in page.text
        assert "<td>403</td><td>50013</td>" in page.text.replace("\n", "").replace(
            "          ", "")
        done = await http.post(f"/console/g/{world.guild.id}/deliveries/{delivery}/retry",
                               data={"csrf": new.csrf_token}, headers={"origin": BASE})
        assert done.status_code == 200 and f"D{delivery} queued again" in done.text
    async with world.container.db.autocommit() as conn:
        audit = (await conn.execute(text(
            "SELECT actor_id, source::text FROM remediation_actions WHERE target_kind = "
            "'delivery' AND target_id = :id"), {"id": delivery})).all()
    assert [tuple(a) for a in audit] == [(world.staff, "console")]
