"""Minimal progress display on stderr (no dependency): a bar on a TTY, one line per step otherwise."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str = "", stream=None, enabled: bool = True):
        self.total, self.label, self.done = max(total, 1), label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()

    def step(self, what: str = "", n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if self.tty:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:6.1f}s {what[:40]:<40}")
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"{self.label} {self.done}/{self.total} {elapsed:.1f}s {what}\n")
        self.stream.flush()


def step_log(message: str, enabled: bool = True) -> None:
    """One progress line for a long step (export, build)."""
    if enabled:
        sys.stderr.write(f"... {message}\n")
        sys.stderr.flush()
