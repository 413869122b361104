"""The real bot, in process, against the sandbox: it logs in, syncs its commands, and the two
commands every guild starts with do what a person expects: the owner's /lifeline setup is
stored and answered, and a member's /verify moves the member and is recorded."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from domain.commands import TransitionCommand
from domain.lifecycle import Source, State
from tests.bot.world import World, setup_guild
from tests.helpers import check_invariants, path_to

EPHEMERAL = 64
DEFERRED_CHANNEL_MESSAGE = 5


async def test_bot_logs_in_syncs_and_answers_setup(world: World) -> None:
    reply = await setup_guild(world)
    assert reply.ephemeral
    assert reply.content == (
        "✅ Lifeline is set up.\n"
        f"Log channel: <#{world.log_channel}>\n"
        f"Staff roles: <@&{world.staff_role}>\n"
        f"Verified role: <@&{world.verified_role}>\n"
        "Eligibility role: (none: automatic)\n"
        "Mirror level: dead_letters\n"
        "ℹ️ For the staff roles to see `/member`, `/dlq` and `/lifeline`: Server Settings → "
        "Integrations → Lifeline, add the roles to each command (a bot cannot do this itself; "
        "Lifeline still checks the roles on every command).\n\n"
        "**Discord permissions**: ✅ Lifeline has what it needs")
    async with world.container.db.autocommit() as conn:
        stored = (await conn.execute(text(
            "SELECT log_channel_id, staff_role_ids, verified_role_id, eligibility_role_id, "
            "mirror_level::text AS mirror_level FROM guild_settings WHERE guild_id = :g"),
            {"g": world.guild.id})).one()
    assert tuple(stored) == (world.log_channel, [world.staff_role], world.verified_role,
                             None, "dead_letters")


async def test_a_members_verify_command_moves_the_member_and_is_recorded(
        world: World) -> None:
    await setup_guild(world)
    user = world.sandbox.member_join(world.guild, None, "mia").user.id
    await world.wait_state(user, "joined")
    steps = path_to(State.RULES_ACCEPTED)
    for op in steps[1:]:  # the join came from the gateway
        await world.container.transitions.apply(TransitionCommand(
            guild_id=world.guild.id, user_id=user, operation=op, source=Source.BOT,
            idempotency_key=uuid.uuid4().hex))

    handle = world.sandbox.slash_command(world.guild, user, "verify", {})
    first = await handle.wait_reply()  # before any database work: "thinking", ephemeral
    assert first.type == DEFERRED_CHANNEL_MESSAGE and first.data["flags"] & EPHEMERAL
    reply = await handle.wait_message()
    assert reply.ephemeral
    assert reply.content == \
        "✅ Your verification request is in; staff or the web app will confirm it."
    # The answer comes after the write: the member is already moved.
    member = await world.container.transitions.get_member(world.guild.id, user)
    assert member is not None
    assert (member.state, member.version) == (State.VERIFICATION_PENDING, len(steps) + 1)
    (last, previous) = await world.container.transitions.history(world.guild.id, user, 2)
    assert (last.version, last.operation.value, last.from_state, last.to_state) == \
        (len(steps) + 1, "request_verification", State.RULES_ACCEPTED, State.VERIFICATION_PENDING)
    assert (last.source, last.actor_id, last.reason) == \
        (Source.BOT, user, "asked to be verified")
    assert last.idempotency_key == f"cmd:{handle.id}" and last.correlation_id
    assert previous.version == len(steps) and previous.to_state == State.RULES_ACCEPTED
    assert await world.count("dead_letters") == 0
    await check_invariants(world.container.db)
