"""Role edits by an admin (permissions, the role list's order) reach the bot's cache, and
REST role changes follow them: what `/lifeline setup`'s checks read."""

from __future__ import annotations

import aiohttp
import discord
import pytest

from sandbox import Perm

from .support import cached_guild, cached_member, expect, make_bot, running

pytestmark = pytest.mark.asyncio


async def test_a_role_dragged_above_the_bot_is_seen_and_refused(sandbox, guild):
    member = sandbox.member_join(guild, 9101, "target", pending=False)
    verified = sandbox.add_role(guild, "Verified")
    bot_role = sandbox.bot_role(guild)
    assert bot_role.position > verified.position
    async with running(sandbox, make_bot()) as bot:
        cached = cached_guild(bot, guild.id)
        moved = expect(bot, "guild_role_update", lambda before, after: after.id == verified.id)
        sandbox.edit_role(guild, verified, position=bot_role.position)
        await moved
        # Discord renumbers: Verified takes the bot role's place, the bot's role one below.
        assert verified.position == bot_role.position + 1
        await sandbox.wait_until(
            lambda: cached.me.top_role.position == bot_role.position, what="bot role moved")
        assert cached.me.top_role < cached.get_role(verified.id)  # type: ignore[operator]
        with pytest.raises(discord.Forbidden) as refused:
            await cached_member(bot, guild.id, member.id).add_roles(discord.Object(verified.id))
        assert refused.value.code == 50013
        # Dragged back below the bot's role, the same change goes through.
        sandbox.edit_role(guild, verified, position=1)
        await sandbox.wait_until(
            lambda: cached.me.top_role > cached.get_role(verified.id), what="role moved back")
        await cached_member(bot, guild.id, member.id).add_roles(discord.Object(verified.id))
    assert [(c.role_id, c.action) for c in sandbox.role_changes] == [(verified.id, "add")]


async def test_manage_roles_taken_from_the_bots_role_is_seen_and_refused(sandbox, guild):
    member = sandbox.member_join(guild, 9102, "target", pending=False)
    verified = sandbox.add_role(guild, "Verified")
    bot_role = sandbox.bot_role(guild)
    async with running(sandbox, make_bot()) as bot:
        cached = cached_guild(bot, guild.id)
        assert cached.me.guild_permissions.manage_roles
        changed = expect(bot, "guild_role_update", lambda before, after: after.id == bot_role.id)
        sandbox.edit_role(guild, bot_role, permissions=bot_role.permissions & ~Perm.MANAGE_ROLES)
        await changed
        assert not cached.me.guild_permissions.manage_roles
        with pytest.raises(discord.Forbidden) as refused:
            await cached_member(bot, guild.id, member.id).add_roles(discord.Object(verified.id))
        assert refused.value.code == 50013
    assert sandbox.role_changes == []


async def test_the_control_api_edits_roles(sandbox, guild):
    verified = sandbox.add_role(guild, "Verified")
    bot_role = sandbox.bot_role(guild)
    async with running(sandbox, make_bot()) as bot, aiohttp.ClientSession() as http:
        base = sandbox.base_url + "/_sandbox"
        moved = expect(bot, "guild_role_update", lambda before, after: after.id == verified.id)
        body = {"guild_id": str(guild.id), "role_id": str(verified.id),
                "position": bot_role.position}
        async with http.post(base + "/role", json=body) as resp:
            assert resp.status == 200
            assert (await resp.json())["position"] == bot_role.position + 1
        await moved
        body = {"guild_id": str(guild.id), "role_id": "42", "permissions": 0}
        async with http.post(base + "/role", json=body) as resp:
            assert resp.status == 400 and "Unknown Role" in (await resp.json())["error"]


async def test_a_deleted_role_leaves_the_guild_and_its_members(sandbox, guild):
    verified = sandbox.add_role(guild, "Verified")
    member = sandbox.member_join(guild, 9103, "holder", pending=False, roles=[verified.id])
    async with running(sandbox, make_bot()) as bot:
        cached = cached_guild(bot, guild.id)
        assert cached_member(bot, guild.id, member.id).get_role(verified.id) is not None
        deleted = expect(bot, "guild_role_delete", lambda role: role.id == verified.id)
        sandbox.delete_role(guild, verified)
        await deleted
        assert cached.get_role(verified.id) is None
        assert cached_member(bot, guild.id, member.id).get_role(verified.id) is None
        with pytest.raises(discord.NotFound):
            await cached_member(bot, guild.id, member.id).add_roles(discord.Object(verified.id))
    assert verified.id not in guild.members[member.id].roles
