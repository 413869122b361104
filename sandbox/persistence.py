"""Keeping a sandbox's world on disk, so a restarted sandbox shows the same server.

With ``SandboxConfig.data_dir`` set, :class:`WorldStore` reads ``<data_dir>/world.json``
when the sandbox starts, and writes it again after every change once the sandbox has
been quiet for ``save_delay`` seconds, and when it stops. A write never leaves a torn
file behind: the world goes to a temporary file in the same directory, is fsynced, and
replaces the old file by a rename (then the directory is fsynced so the rename lasts).

A file that cannot be read or understood stops the start with :class:`WorldFileError`,
naming the file: the sandbox refuses to start rather than silently starting empty and
overwriting the saved world on its first save. Moving the file aside (or deleting it)
starts a fresh world. Without ``data_dir`` (tests, the scripted demo) nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from . import world_codec
from .core import Core
from .errors import SandboxError

log = logging.getLogger(__name__)

FILENAME = "world.json"


class WorldFileError(SandboxError):
    """The saved world cannot be read; the message names the file and what to do."""


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: all of it or, after a crash, the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class WorldStore:
    """Loads the world at start, saves it (debounced) while running and on close."""

    def __init__(self, core: Core, data_dir: Path, *, delay: float = 0.5) -> None:
        self.core = core
        self.path = Path(data_dir) / FILENAME
        self.delay = delay
        self.saves = 0  # files written, for tests and logs
        # The last world written or loaded, without its time of saving.
        self._on_disk: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- loading ---------------------------------------------------------
    def load(self) -> bool:
        """Replace the world with the saved one; False when there is none yet."""
        for stale in self.path.parent.glob(f".{FILENAME}.*.tmp"):
            # Left by a write that a crash interrupted; the real file is intact.
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except (OSError, UnicodeDecodeError) as exc:
            raise self._error(f"it cannot be read ({exc})") from None
        try:
            data: Any = json.loads(text)
        except ValueError as exc:
            raise self._error(f"it is not valid JSON ({exc})") from None
        try:
            world_codec.decode_into(self.core, data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise self._error(f"it is not a sandbox world this version can read ({what})") from None
        self._snapshot()  # what was loaded counts as written
        return True

    def _error(self, why: str) -> WorldFileError:
        return WorldFileError(
            f"cannot load the saved sandbox world from {self.path}: {why}. Move the file "
            f"aside (or delete it) to start with a fresh world."
        )

    # -- saving ----------------------------------------------------------
    def attach(self) -> None:
        """Start saving on changes: every sandbox change wakes the notifier."""
        self._loop = asyncio.get_running_loop()
        self.core.notifier.listeners.append(self.changed)

    def changed(self) -> None:
        """Something may have changed: save within ``delay`` seconds.

        Changes inside those seconds share the one save; a steady stream of changes (a bot
        posting all the time) is saved every ``delay`` seconds rather than never.
        """
        if self._loop is None or self._timer is not None:
            return
        self._timer = self._loop.call_later(self.delay, self._save_soon)

    def _save_soon(self) -> None:
        self._timer = None
        if self._writing is not None and not self._writing.done():
            self.changed()  # one write at a time: try again in ``delay`` seconds
            return
        self._writing = asyncio.ensure_future(self._save_in_thread())

    def _snapshot(self) -> str | None:
        """The world's file text, or None when the world is as it was last written."""
        data = world_codec.encode(self.core)  # on the loop: nothing changes while encoding
        saved_at = data.pop("saved_at")
        # Compared without the time of saving, so an unchanged world is not written again.
        same = json.dumps(data, ensure_ascii=False, sort_keys=True)
        if same == self._on_disk:
            return None
        self._on_disk = same
        return json.dumps({**data, "saved_at": saved_at}, ensure_ascii=False, sort_keys=True)

    async def _save_in_thread(self) -> None:
        text = self._snapshot()
        if text is None:
            return
        try:
            await asyncio.to_thread(write_atomically, self.path, text)
        except OSError:
            self._on_disk = None  # not written: the next change tries again
            log.exception("sandbox: could not save the world to %s", self.path)
            return
        self.saves += 1

    def save_now(self) -> bool:
        """Write the world now if it changed (on stop); True if a file was written."""
        text = self._snapshot()
        if text is None:
            return False
        write_atomically(self.path, text)
        self.saves += 1
        return True

    async def close(self) -> None:
        """Stop listening, finish a write under way, and write the final world."""
        with contextlib.suppress(ValueError):
            self.core.notifier.listeners.remove(self.changed)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            await self._writing
        self._loop = None
        self.save_now()
