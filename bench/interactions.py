"""8. Staff slash commands during the raid: first response within Discord's 3 s.

Forty commands (`/dlq list` and `/member show <a member who just joined>`, alternating, by the
guild owner, spread evenly over the raid of bench/raid.py and alternating between its two
guilds) go through the sandbox's interaction API while the raid runs. The sandbox enforces
Discord's rule: an initial response later than 3 s after the interaction was created is
refused with 10062 Unknown interaction, and the command has expired for the person who ran
it. First-response latency is the sandbox's time from creating the interaction to accepting
its first callback (both on its monotonic clock); the answer latency is until the first
message a person can read.

When `raid` ran before in the same invocation, its commands are reported (both of its runs);
otherwise this benchmark runs the raid with one bot process itself, without the stepped rates.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench import raid
from bench.botproc import bot_database_url
from bench.common import Context, Report, Target, percentile
from bench.sandbox_host import COMMANDS

NAME = "interactions"
TITLE = "Staff slash commands during the raid (Discord's 3 s limit)"
FIRST_RESPONSE_LIMIT = 1.0


def summarise(commands: list[dict[str, Any]]) -> dict[str, Any]:
    firsts = [c["first_reply_s"] for c in commands if "first_reply_s" in c]
    answers = [c["answer_s"] for c in commands if "answer_s" in c]
    return {
        "commands": len(commands),
        "expired": sum(bool(c.get("expired", True)) for c in commands),
        "refused_by_sandbox": [c["error"] for c in commands if "error" in c],
        "unanswered": sum("answer_s" not in c for c in commands),
        "first_response_s": {"p50": round(percentile(firsts, 50), 3),
                             "p99": round(percentile(firsts, 99), 3),
                             "max": round(max(firsts, default=0.0), 3)},
        "answer_s": {"p50": round(percentile(answers, 50), 3),
                     "p99": round(percentile(answers, 99), 3),
                     "max": round(max(answers, default=0.0), 3)},
        "reply_types": dict(Counter(str(c.get("reply_type")) for c in commands)),
        "by_command": dict(Counter(c["name"] for c in commands)),
    }


async def commands_of_a_raid(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    shared = ctx.shared.get("raid_commands")
    if shared:
        return dict(shared)
    async with bot_database_url(ctx) as database:
        figures = await raid.raid_once(ctx, raid.scale_of(ctx), database, 1, steps=False)
    return {"1 process": figures["commands"]}


async def run(ctx: Context) -> Report:
    scale = raid.scale_of(ctx)
    runs = await commands_of_a_raid(ctx)
    report = ctx.report(NAME, TITLE, {
        "commands_per_raid": scale.commands, "commands": list(COMMANDS),
        "raid_joins": scale.joins, "raid_seconds": scale.seconds,
        "ack_limit_s": 3.0, "source": "the raid benchmark's runs" if "raid_commands"
        in ctx.shared else "a raid run by this benchmark (1 process)"})
    report.metrics = {label: summarise(commands) for label, commands in runs.items()}
    for label, s in report.metrics.items():
        first, answer = s["first_response_s"], s["answer_s"]
        report.row(f"{label}: expired / commands", f"{s['expired']} / {s['commands']}"
                   + (f" (sandbox refused {s['refused_by_sandbox']})"
                      if s["refused_by_sandbox"] else ""))
        report.row(f"{label}: first response p50 / p99 / max",
                   f"{first['p50']} / {first['p99']} / {first['max']} s")
        report.row(f"{label}: readable answer p50 / p99 / max",
                   f"{answer['p50']} / {answer['p99']} / {answer['max']} s "
                   f"({s['unanswered']} without one within 60 s)")
        report.targets += [
            Target(f"{label}: expired interactions", s["expired"], 0, "<="),
            Target(f"{label}: first response p99", first["p99"] if s["commands"] else None,
                   FIRST_RESPONSE_LIMIT, "<=", "s")]
    return report
