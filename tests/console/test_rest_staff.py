"""Who is staff, for a console served by an API replica (no gateway): the bot's view through
Discord's REST API (the sandbox's), with the bot token."""

from __future__ import annotations

from bot.console.staff_rest import RestStaff
from sandbox import Perm
from tests.bot.world import World, setup_guild


async def test_owner_staff_role_and_manage_server_are_staff_others_not(world: World) -> None:
    await setup_guild(world)
    managers = world.sandbox.add_role(world.guild, "Managers", permissions=int(Perm.MANAGE_GUILD))
    manager = world.sandbox.member_join(world.guild, None, "manager",
                                        roles=[managers.id]).user.id
    visitor = world.sandbox.member_join(world.guild, None, "visitor").user.id
    staff = RestStaff(world.container.guilds, world.sandbox.token, world.sandbox.api_url)
    for user, expected in ((world.owner, True), (world.staff, True), (manager, True),
                           (visitor, False), (123456789, False)):
        assert await staff.is_staff(user, world.guild.id) is expected, user
    [found] = await staff.staff_guilds(world.staff)
    assert (found.guild_id, found.name) == (world.guild.id, world.guild.name)
    assert await staff.staff_guilds(visitor) == []
    # A guild Lifeline is not set up in is nobody's, whatever Discord says.
    other = world.sandbox.create_guild("Elsewhere", owner_id=world.staff)
    assert not await staff.is_staff(world.staff, other.id)
