"""Correlation ids: uuid4-shaped, unique, and not repeated by a forked child process."""

from __future__ import annotations

import os
import re

from domain.commands import new_correlation_id


def test_ids_are_32_hex_digits_and_do_not_repeat() -> None:
    ids = [new_correlation_id() for _ in range(100_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, " ".join(new_correlation_id() for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [new_correlation_id() for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(parent)
