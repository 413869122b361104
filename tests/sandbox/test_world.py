"""Unit tests of the model: snowflakes, permissions, command visibility and options."""

from __future__ import annotations

import pytest

from sandbox import ALL_PERMISSIONS, CommandRefused, MemberFlag, Perm
from sandbox.commands import CommandRegistry, build_options
from sandbox.ids import SnowflakeGenerator, shard_for, snowflake_time_ms
from sandbox.models import Channel, Guild, Member, Overwrite, Role
from sandbox.world import World


def test_snowflakes_increase_and_can_target_a_shard():
    ids = SnowflakeGenerator()
    made = [ids.next() for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == 1000
    assert snowflake_time_ms(made[0]) > 1_600_000_000_000  # a plausible recent timestamp
    for shard in range(4):
        assert shard_for(ids.for_shard(shard, 4), 4) == shard
    assert ids.next() > made[-1]


def test_ids_stay_above_an_observed_id_of_another_worker_or_the_future():
    ids = SnowflakeGenerator()
    now = ids.next()
    # A saved world made on a machine whose clock ran 10 s ahead, by another worker.
    ahead = ((((now >> 22) + 10_000) << 22) | (0x1F << 17) | 0xFFF)
    ids.observe(ahead)
    assert ahead < ids.next() < ids.next()


def test_member_flag_bits_match_discord():
    assert [MemberFlag.DID_REJOIN, MemberFlag.COMPLETED_ONBOARDING] == [1, 2]
    assert [MemberFlag.BYPASSES_VERIFICATION, MemberFlag.STARTED_ONBOARDING] == [4, 8]


def _guild() -> tuple[World, Guild, Channel, Role, Role]:
    world = World()
    guild = world.create_guild(
        "g", everyone_permissions=int(Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES)
    )
    channel = world.add_channel(guild, "general")
    mods = world.add_role(guild, "Mods", permissions=int(Perm.KICK_MEMBERS))
    admins = world.add_role(guild, "Admins", permissions=int(Perm.ADMINISTRATOR))
    user = world.user_for(10, "u")
    guild.members[10] = Member(user=user, guild_id=guild.id)
    return world, guild, channel, mods, admins


def test_permissions_owner_admin_roles_and_overwrites():
    _, guild, channel, mods, admins = _guild()
    assert guild.base_permissions(guild.owner_id) == ALL_PERMISSIONS
    assert guild.base_permissions(10) == Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES
    guild.members[10].roles.append(mods.id)
    assert guild.has_permissions(10, Perm.KICK_MEMBERS)
    channel.overwrites[mods.id] = Overwrite(mods.id, 0, deny=int(Perm.SEND_MESSAGES))
    assert not guild.channel_permissions(channel, 10) & Perm.SEND_MESSAGES
    channel.overwrites[10] = Overwrite(10, 1, allow=int(Perm.SEND_MESSAGES))
    assert guild.channel_permissions(channel, 10) & Perm.SEND_MESSAGES
    channel.overwrites[guild.id] = Overwrite(guild.id, 0, deny=int(Perm.VIEW_CHANNEL))
    assert guild.channel_permissions(channel, 10) == 0
    guild.members[10].roles.append(admins.id)
    assert guild.channel_permissions(channel, 10) == ALL_PERMISSIONS


def test_new_roles_go_below_the_bots_role():
    world, guild, _, mods, admins = _guild()
    bot_role = world.bot_role(guild)
    assert bot_role is not None
    assert bot_role.position > mods.position and bot_role.position > admins.position


COMMAND = {
    "name": "dlq",
    "description": "d",
    "default_member_permissions": str(int(Perm.MANAGE_GUILD)),
    "options": [
        {
            "type": 1,
            "name": "retry",
            "description": "r",
            "options": [
                {"type": 4, "name": "job", "description": "j", "required": True, "min_value": 1},
                {
                    "type": 3,
                    "name": "mode",
                    "description": "m",
                    "choices": [
                        {"name": "Soft", "value": "soft"},
                        {"name": "Hard", "value": "hard"},
                    ],
                },
            ],
        },
        {
            "type": 2,
            "name": "jobs",
            "description": "g",
            "options": [
                {
                    "type": 1,
                    "name": "show",
                    "description": "s",
                    "options": [
                        {"type": 8, "name": "role", "description": "r"},
                        {"type": 7, "name": "where", "description": "w"},
                        {"type": 5, "name": "loud", "description": "l"},
                    ],
                },
            ],
        },
    ],
}


def test_visibility_follows_default_permissions_and_overrides():
    world, guild, _, mods, _ = _guild()
    registry = CommandRegistry(world.ids)
    (command,) = registry.bulk_overwrite([COMMAND], guild.id, 1)
    assert registry.visible_to(command, guild, guild.owner_id)
    assert not registry.visible_to(command, guild, 10)
    registry.set_override(guild.id, int(command["id"]), mods.id, 1, True)
    guild.members[10].roles.append(mods.id)
    assert registry.visible_to(command, guild, 10)
    registry.set_override(guild.id, int(command["id"]), 10, 2, False)
    assert not registry.visible_to(command, guild, 10)
    (again,) = registry.bulk_overwrite([COMMAND], guild.id, 1)
    assert again["id"] == command["id"]  # a re-sync keeps ids, so overrides survive


def test_options_nest_and_are_typed():
    world, guild, channel, mods, _ = _guild()
    options, refs = build_options(
        COMMAND, ["retry"], {"job": "5", "mode": "soft"}, guild=guild, world=world
    )
    assert options == [
        {
            "name": "retry",
            "type": 1,
            "options": [
                {"name": "job", "type": 4, "value": 5},
                {"name": "mode", "type": 3, "value": "soft"},
            ],
        }
    ]
    options, refs = build_options(
        COMMAND,
        ["jobs", "show"],
        {"role": mods.id, "where": channel.id, "loud": True},
        guild=guild,
        world=world,
    )
    assert options[0]["type"] == 2 and options[0]["options"][0]["name"] == "show"
    assert (refs.roles, refs.channels) == ([mods.id], [channel.id])
    for bad in ({"job": 0}, {"job": 1, "mode": "medium"}, {"job": True}, {"job": 1, "extra": 1}):
        with pytest.raises(CommandRefused):
            build_options(COMMAND, ["retry"], bad, guild=guild, world=world)
    focused, _ = build_options(
        COMMAND, ["retry"], {"job": "4"}, guild=guild, world=world, focused="job"
    )
    assert focused[0]["options"][0] == {"name": "job", "type": 4, "value": "4", "focused": True}
