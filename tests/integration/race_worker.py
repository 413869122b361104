"""One OS process of the multi-process race test: N random allowed transitions over M members.

Run as `python -m tests.integration.race_worker URL SEED N GUILD FIRST_USER MEMBERS`; prints a
JSON summary of what happened to each write.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from collections import Counter

from bot.settings import Settings
from bot.wiring import build_services
from domain.commands import TransitionCommand
from domain.errors import TransitionDeadLettered
from domain.lifecycle import Operation, Source, TransitionNotAllowed, allowed_operations
from domain.metrics import CountingMetrics
from domain.persistence.database import Database


async def main(url: str, seed: int, n: int, guild: int, first_user: int, members: int) -> None:
    rng = random.Random(seed)
    # As a Lifeline process builds them: its settings (DB_STATEMENT_CACHE_SIZE=0 behind a
    # transaction-mode pooler), the production wiring, the default retry policy.
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    db = Database(url, pool_size=2, max_overflow=0,
                  statement_cache_size=settings.db_statement_cache_size)
    metrics = CountingMetrics()
    service = build_services(settings, db, metrics=metrics).transitions
    outcomes: Counter[str] = Counter()
    applied_ids: list[int] = []
    try:
        for _ in range(n):
            user = first_user + rng.randrange(members)
            member = await service.get_member(guild, user)
            options = allowed_operations(member.state if member else None)
            op = rng.choice(options) if options else Operation.JOIN
            command = TransitionCommand(guild_id=guild, user_id=user, operation=op,
                                        source=rng.choice([Source.BOT, Source.API]),
                                        idempotency_key=uuid.uuid4().hex)
            try:
                result = await service.apply(command)
                if result.already_there:  # another process got it there first
                    outcomes["already_there"] += 1
                    continue
                outcomes["applied"] += 1
                assert result.transition_id is not None
                applied_ids.append(result.transition_id)
            except TransitionNotAllowed:
                outcomes["not_allowed"] += 1
            except TransitionDeadLettered as exc:
                outcomes[f"dead_lettered:{exc.reason_code}"] += 1
    finally:
        await db.dispose()
    print(json.dumps({"outcomes": outcomes, "applied_ids": applied_ids,
                      "conflicts": sum(metrics.conflicts.values()),
                      "retries": sum(metrics.retries.values())}))


if __name__ == "__main__":
    url, seed, n, guild, first, members = sys.argv[1:7]
    asyncio.run(main(url, int(seed), int(n), int(guild), int(first), int(members)))
