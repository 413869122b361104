"""What `--serve` prints is safe to paste: member variables never overwrite the shell's own."""

from __future__ import annotations

from bot.demo_serve import member_exports
from sandbox import Sandbox, SandboxConfig


def test_member_exports_leave_out_names_the_shell_or_the_demo_already_use() -> None:
    sandbox = Sandbox(SandboxConfig())  # not started: the world alone is enough here
    guild = sandbox.create_guild("G")
    members = [sandbox.member_join(guild, None, name) for name in
               ("alice", "path", "sandbox", "Alice", "3d", "mary-jane")]
    exported = member_exports(members, {"PATH", "SANDBOX", "GUILD"})
    assert exported.split() == [f"ALICE={members[0].id}", f"U_3D={members[4].id}",
                                f"MARY_JANE={members[5].id}"]
