"""The bot/API race (in one process, and the API as a process of its own that also migrates
at start), through PgBouncer in transaction mode."""

from tests.bot.test_bot_api_race import (  # noqa: F401
    race_world,
    test_bot_and_api_in_one_process_converge,
    test_bot_and_api_in_separate_processes_converge,
)
