"""The demo's transcript reads like the Discord client shows it: names, not markup."""

from __future__ import annotations

import time

from bot.demo_transcript import Transcript
from sandbox import Guild, Sandbox, SandboxConfig


def _guild() -> tuple[Guild, int]:
    sandbox = Sandbox(SandboxConfig())  # not started: the world alone is enough here
    guild = sandbox.create_guild("G", channels=("mod-log",), roles={"Verified": 0})
    return guild, sandbox.member_join(guild, None, "alice").id


def test_users_roles_channels_and_times_are_rendered_by_name() -> None:
    guild, alice = _guild()
    transcript = Transcript(guild, {alice: "alice"})
    verified = guild.role_named("Verified").id
    mod_log = next(c.id for c in guild.channels.values() if c.name == "mod-log")
    now = int(time.time())
    line = (f"<@{alice}> got <@&{verified}> in <#{mod_log}> <t:{now}:R>, "
            f"<t:0:f>; <@!{alice}> <@&1> <#2> <@3>")
    assert transcript.render(line) == (
        "@alice got @Verified in #mod-log just now, 1970-01-01 00:00:00 UTC; "
        "@alice @deleted-role #deleted-channel @3")


def test_options_are_shown_as_typed_in_discord() -> None:
    guild, alice = _guild()
    transcript = Transcript(guild)  # no demo name: the sandbox's username
    mod_log = next(c.id for c in guild.channels.values() if c.name == "mod-log")
    assert transcript.option("user", alice) == "@alice"
    assert transcript.option("log_channel", mod_log) == "#mod-log"
    assert transcript.option("verified_role", guild.role_named("Verified").id) == "@Verified"
    assert transcript.option("id", "42") == "42" and transcript.option("force", True) == "True"
