"""`/lifeline setup` and `/lifeline status` say what Lifeline is missing in Discord, each
problem with its fix, as the bot sees its rights (discord.py's cache of the sandbox's
roles, positions and channel overwrites); and nothing when all is right."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import Perm
from tests.bot.roles import outbox_idle, verify
from tests.bot.world import World, eventually, message_text, setup_guild

ALL_RIGHT = "**Discord permissions**: ✅ Lifeline has what it needs"


def below_verified(world: World) -> None:
    bot_role = world.sandbox.bot_role(world.guild)
    world.sandbox.edit_role(world.guild, world.verified_role, position=bot_role.position)


def no_manage_roles(world: World) -> None:
    bot_role = world.sandbox.bot_role(world.guild)
    world.sandbox.edit_role(world.guild, bot_role,
                            permissions=bot_role.permissions & ~Perm.MANAGE_ROLES)


def no_embeds(world: World) -> None:
    world.sandbox.deny_channel("mod-log", world.guild, permissions=Perm.EMBED_LINKS)


def hidden_channel(world: World) -> None:
    world.sandbox.deny_channel("mod-log", world.guild, permissions=Perm.VIEW_CHANNEL)


PROBLEMS: dict[str, tuple[Callable[[World], None], str]] = {
    "role below": (below_verified, "Lifeline's role is below Verified: drag it above "
                                   "Verified in Server Settings → Roles"),
    "manage roles": (no_manage_roles, "Lifeline is missing Manage Roles: turn it on for "
                                      "Lifeline's role in Server Settings → Roles"),
    "embed links": (no_embeds, "missing Embed Links in #mod-log: allow them for Lifeline in "
                               "the channel's settings → Permissions"),
    # Without View Channel, Discord takes every channel permission away.
    "view channel": (hidden_channel, "missing View Channel, Send Messages, Embed Links in "
                                     "#mod-log"),
}


async def status_with(world: World, text: str) -> str:
    """/lifeline status, asked until its answer says `text` (the change made in the
    sandbox reaches the bot's cache through the gateway)."""
    async def answer() -> str | None:
        found = await world.ask(world.staff, "lifeline status")
        return found if text in found else None
    return await eventually(answer, what=f"/lifeline status saying {text!r}")


async def test_nothing_is_reported_when_all_is_right(world: World) -> None:
    answer = message_text(await setup_guild(world))
    assert "✅ Lifeline is set up." in answer
    assert ALL_RIGHT in answer
    assert "⚠️" not in answer
    assert ALL_RIGHT in await world.ask(world.staff, "lifeline status")


@pytest.mark.parametrize("problem", list(PROBLEMS))
async def test_each_missing_piece_is_reported_with_its_fix(world: World, problem: str) -> None:
    await setup_guild(world)
    make, expected = PROBLEMS[problem]
    make(world)
    # Status re-checks; setup still saves the settings and says the same.
    status = await status_with(world, expected)
    assert "**Discord permissions**: ⚠️ 1 to fix" in status
    assert expected in status
    answer = message_text(await setup_guild(world))
    assert "✅ Lifeline is set up." in answer
    assert expected in answer
    assert ALL_RIGHT not in answer


async def test_every_problem_at_once_is_listed_and_clears_when_fixed(world: World) -> None:
    await setup_guild(world)
    bot_role = world.sandbox.bot_role(world.guild)
    permissions = bot_role.permissions
    for make, _ in PROBLEMS.values():
        if make is not hidden_channel:
            make(world)
    answer = await status_with(world, "⚠️ 3 to fix")
    for make, expected in PROBLEMS.values():
        if make is not hidden_channel:
            assert expected in answer
    # Fixed in Discord: the next status says all is right, with no setup needed.
    world.sandbox.edit_role(world.guild, bot_role, permissions=permissions,
                            position=bot_role.position + 1)
    world.sandbox.allow_channel("mod-log", world.guild)
    await status_with(world, ALL_RIGHT)


async def test_a_deleted_role_or_channel_is_reported_and_repair_refuses(world: World) -> None:
    """A deleted verified role would make every verified member's grant fail (unknown
    role): status says so, and the repair queues nothing."""
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "verified").user.id
    await world.wait_state(user, "joined")
    await verify(world, user)
    await outbox_idle(world)
    world.sandbox.delete_role(world.guild, world.verified_role)
    world.sandbox.delete_channel("mod-log", world.guild)
    status = await status_with(world, "⚠️ 2 to fix")
    assert "the verified role no longer exists: run /lifeline setup with the role to use" \
        in status
    assert "the log channel no longer exists: run /lifeline setup with the channel to use" \
        in status
    answer = await world.ask(world.staff, "lifeline status", {"repair": True})
    assert "**Role repair**: not run: the verified role no longer exists" in answer
    assert "Dead letters:" in answer  # the rest of the status still stands
    answer = await world.ask(world.staff, "lifeline repair")
    assert "❌ the verified role no longer exists" in answer
    assert await world.count("outbox", "payload ? 'repair'") == 0
