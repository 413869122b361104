"""The console's failed-deliveries page over the real bot: a role grant Discord refused is
shown with its cause and attempts, and retried as the logged-in user."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import text

from domain.commands import TransitionCommand
from domain.lifecycle import Source, State
from sandbox import Perm
from tests.bot.support import enqueue_records
from tests.bot.world import World, eventually
from tests.console.support import BASE, console_client, staff_login
from tests.helpers import next_user, path_to


async def _failed_of(world: World, kind: str, count: int) -> list[int]:
    """The ids of the `count` failed deliveries of a kind, oldest first, once they are."""
    async def failed() -> list[int] | None:
        async with world.container.db.autocommit() as conn:
            ids = (await conn.execute(text(
                "SELECT id FROM outbox WHERE kind = CAST(:k AS outbox_kind) AND status IN "
                "('failed', 'dead_lettered') ORDER BY id"), {"k": kind})).scalars().all()
        return list(ids) if len(ids) == count else None
    return await eventually(failed, what=f"{count} failed {kind} deliveries")


async def _failed_grants(world: World, count: int = 1) -> list[int]:
    """`count` verified members whose grants Discord refused (the verified role sits above
    Lifeline's): their delivery ids, oldest first."""
    high = world.sandbox.add_role(world.guild, "Verified (above Lifeline)", position=50)
    await world.command(world.owner, "lifeline setup", {
        "log_channel": world.log_channel, "verified_role": high.id,
        "staff_role": world.staff_role})

    async def verify(user: int) -> None:
        world.sandbox.member_join(world.guild, user, f"dora{user}", pending=False)
        await world.wait_state(user, "joined")
        for op in path_to(State.VERIFIED)[1:]:
            await world.container.transitions.apply(TransitionCommand(
                guild_id=world.guild.id, user_id=user, operation=op, source=Source.BOT,
                idempotency_key=f"console-test:{user}:{op.value}"))
    await asyncio.gather(*(verify(next_user()) for _ in range(count)))
    return await _failed_of(world, "role_sync", count)


async def test_a_refused_grant_is_shown_with_its_cause_and_retried(world: World) -> None:
    [delivery] = await _failed_grants(world)
    async with console_client(world) as http:
        csrf = await staff_login(world, http)
        page = await http.get(f"/console/g/{world.guild.id}/deliveries")
        assert page.status_code == 200
        assert f"D{delivery}" in page.text
        assert "Lifeline&#39;s role is below the verified role" in page.text
        assert "<td>403</td><td>50013</td>" in page.text.replace("\n", "").replace(
            "          ", "")
        done = await http.post(f"/console/g/{world.guild.id}/deliveries/{delivery}/retry",
                               data={"csrf": csrf}, headers={"origin": BASE})
        assert done.status_code == 200 and f"D{delivery} queued again" in done.text
        assert "Queued again" not in done.text

        async def refused_again() -> bool:
            found, timeline = await world.container.deliveries.show(world.guild.id, delivery)
            return found.status.value == "dead_lettered" and len(timeline.attempts) == 2
        await eventually(refused_again, what="the retried grant refused again")
        again = (await http.get(f"/console/g/{world.guild.id}/deliveries")).text
        assert again.index("<td>1</td>") < again.index("Queued again: attempts count from 1") \
            < again.rindex("<td>1</td>")
    async with world.container.db.autocommit() as conn:
        audit = (await conn.execute(text(
            "SELECT actor_id, source::text FROM remediation_actions WHERE target_kind = "
            "'delivery' AND target_id = :id"), {"id": delivery})).all()
    assert [tuple(a) for a in audit] == [(world.staff, "console")]


async def test_failed_deliveries_come_a_page_at_a_time_and_are_retried_all_at_once(
        world: World) -> None:
    ids = await _failed_grants(world, 51)
    g = f"/console/g/{world.guild.id}/deliveries"
    async with console_client(world) as http:
        csrf = await staff_login(world, http)
        assert "No log lines failed." in (await http.get(g, params={"kind": "mirror"})).text
        assert "Nothing to retry: no log lines had failed." in (await http.post(
            f"{g}/retry-failed", data={"csrf": csrf, "kind": "mirror"},
            headers={"origin": BASE})).text
        # A log line refused too (missing Embed Links): a second kind of failure.
        world.sandbox.deny_channel(world.log_channel, world.guild, permissions=Perm.EMBED_LINKS)
        await enqueue_records(world.container.db, world.guild.id, range(1))
        [line] = await _failed_of(world, "mirror", 1)

        first = await http.get(g, params={"kind": "role_sync"})
        assert "51 failed (role changes)" in first.text
        shown = [int(d) for d in re.findall(r"<h2>D(\d+) ", first.text)]
        assert shown == ids[:0:-1]  # newest first, 50 of them
        older = re.search(r'href="(\?kind=role_sync&amp;cursor=\d+)"', first.text)
        assert older is not None
        last = await http.get(g + older.group(1).replace("&amp;", "&"))
        assert [int(d) for d in re.findall(r"<h2>D(\d+) ", last.text)] == [ids[0]]
        assert "Older failed deliveries" not in last.text
        assert f"<h2>D{line} " in (await http.get(g)).text
        for bad in ({"kind": "email"}, {"cursor": "9" * 19}, {"cursor": "x"}):
            assert (await http.get(g, params=bad)).status_code == 400, bad

        done = await http.post(f"{g}/retry-failed", data={"csrf": csrf, "kind": "role_sync"},
                               headers={"origin": BASE})
        assert done.status_code == 200
        assert "Of 51 failed: 51 queued again." in done.text
        assert "1 failed (log lines)" not in done.text  # the page keeps the kind filter
    async with world.container.db.autocommit() as conn:
        audit = (await conn.execute(text(
            "SELECT actor_id, source::text, count(*) FROM remediation_actions "
            "WHERE target_kind = 'delivery' GROUP BY 1, 2"))).all()
        still = (await conn.execute(text("SELECT status::text FROM outbox WHERE id = :id"),
                                    {"id": line})).scalar_one()
    assert [tuple(a) for a in audit] == [(world.staff, "console", 51)]
    assert still in ("failed", "dead_lettered")  # the other kind was not retried
