"""Progress on a terminal: one self-rewriting line on stderr, only when it is a TTY."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Call ``progress(step, done, total)``; prints at most ~10 times a second.

    Silent when stderr is not a terminal (logs, CI), and for runs shorter than
    ``after`` seconds, so quick runs stay quiet.
    """

    def __init__(self, stream: TextIO | None = None, *, after: float = 2.0, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self.after = after
        self._last = 0.0
        self._shown = False

    def __call__(self, step: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.after or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        pct = 100.0 * done / total if total else 100.0
        self.stream.write(f"\r  {step}: {done:,}/{total:,} ({pct:5.1f} %)  {now - self.start:6.1f} s\x1b[K")
        self.stream.flush()
        self._shown = True

    def message(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r{text}\x1b[K\n" if self._shown else f"{text}\n")
            self.stream.flush()
            self._shown = False

    def done(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
