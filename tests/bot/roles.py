"""Helpers of the verified-role tests: a member walked to `verified`, the bot's cache of
the role, the outbox drained."""

from __future__ import annotations

from domain.lifecycle import Source, State
from tests.bot.world import World, eventually
from tests.helpers import cmd, path_to


async def verify(world: World, user: int) -> None:
    """A joined member walked to `verified` by the web app; the grant is delivered."""
    for op in path_to(State.VERIFIED)[1:]:
        await world.container.transitions.apply(cmd(op, user, world.guild.id,
                                                     source=Source.API))
    await holds(world, user, True)


async def holds(world: World, user: int, wanted: bool) -> None:
    """Until the bot's cache shows `user` holding the verified role (or not)."""
    async def check() -> bool:
        guild = world.bot.get_guild(world.guild.id)
        member = guild.get_member(user) if guild else None
        return member is not None and (member.get_role(world.verified_role) is not None) \
            == wanted
    await eventually(check, what=f"member {user} {'with' if wanted else 'without'} the role")


async def outbox_idle(world: World) -> None:
    async def idle() -> bool:
        return await world.count("outbox", "status IN ('pending', 'retry_scheduled', "
                                 "'delivering')") == 0
    await eventually(idle, what="every outbox row delivered")
