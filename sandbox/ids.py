"""Snowflake ids that look like Discord's, with a way to aim at a shard.

A Discord snowflake is ``(ms since 2015-01-01) << 22 | worker << 17 | process << 12 | increment``.
Tests sometimes need a guild on a given shard, which Discord computes as
``(guild_id >> 22) % shard_count``; :meth:`SnowflakeGenerator.for_shard` returns
such an id without guessing.
"""

from __future__ import annotations

import time

DISCORD_EPOCH_MS = 1_420_070_400_000


def shard_for(guild_id: int, shard_count: int) -> int:
    """The shard Discord delivers a guild's events to."""
    return (guild_id >> 22) % shard_count


def snowflake_time_ms(snowflake: int) -> int:
    """Unix time in milliseconds at which a snowflake was made."""
    return (snowflake >> 22) + DISCORD_EPOCH_MS


class SnowflakeGenerator:
    """Makes unique, increasing snowflakes from the wall clock."""

    def __init__(self, worker: int = 1, process: int = 0) -> None:
        self._worker = worker & 0x1F
        self._process = process & 0x1F
        self._last_ms = 0
        self._increment = 0
        # The largest id made or observed: every later id is larger, even after a restart
        # that observed the ids of a saved world.
        self.highest = 0

    def _next_timestamp(self) -> int:
        now_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        # Never go backwards, even if the clock does or we ran out of increments.
        return max(now_ms, self._last_ms)

    def next(self) -> int:
        stamp = self._next_timestamp()
        if stamp == self._last_ms:
            self._increment += 1
            if self._increment > 0xFFF:
                stamp += 1
                self._increment = 0
        else:
            self._increment = 0
        self._last_ms = stamp
        made = (stamp << 22) | (self._worker << 17) | (self._process << 12) | self._increment
        if made <= self.highest:
            # An observed id of this millisecond sorts after ours (another worker, or more
            # increments): move to the next millisecond.
            self._last_ms, self._increment = (self.highest >> 22) + 1, 0
            made = (self._last_ms << 22) | (self._worker << 17) | (self._process << 12)
        self.highest = made
        return made

    def for_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh snowflake whose timestamp part lands on ``shard_id``."""
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard_id {shard_id} is outside 0..{shard_count - 1}")
        stamp = self._next_timestamp() + 1
        stamp += (shard_id - stamp) % shard_count
        self._last_ms = stamp
        self._increment = 0
        made = (stamp << 22) | (self._worker << 17) | (self._process << 12)
        self.highest = max(self.highest, made)
        return made

    def observe(self, snowflake: int) -> None:
        """Make sure later ids sort after an id chosen elsewhere (by a test, or a saved world)."""
        self._last_ms = max(self._last_ms, snowflake >> 22)
        self.highest = max(self.highest, snowflake)
