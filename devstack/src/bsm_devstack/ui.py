"""Console output for the stack commands (rich)."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from rich.console import Console
from rich.text import Text

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class StackError(RuntimeError):
    """A step failed; the message has been or will be shown, the command exits non-zero."""


def step(component: str, message: str) -> None:
    console.print(Text.assemble(("  • ", "cyan"), (f"{component}: ", "bold"), message))


def ok(component: str, message: str) -> None:
    console.print(Text.assemble(("  ✓ ", "green"), (f"{component}: ", "bold"), message))


def warn(component: str, message: str) -> None:
    console.print(Text.assemble(("  ! ", "yellow"), (f"{component}: ", "bold yellow"),
                                (message, "yellow")))


def fail(component: str, message: str) -> None:
    err_console.print(Text.assemble(("  ✗ ", "red"), (f"{component}: ", "bold red"),
                                    (message, "red")))


def tail(path: Path, lines: int = 30, since: int = 0) -> list[str]:
    """The last ``lines`` lines of ``path``, reading only from byte offset ``since``."""
    try:
        with open(path, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return list(deque(text.splitlines(), maxlen=lines))


def show_tail(path: Path, lines: int = 30, since: int = 0) -> None:
    content = tail(path, lines, since)
    if not content:
        err_console.print(Text(f"    (nothing new in {path})", style="dim"))
        return
    err_console.print(Text(f"    last {len(content)} lines of {path}:", style="dim"))
    for line in content:
        err_console.print(Text("    │ " + line, style="dim"), soft_wrap=True)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class Progress:
    """Prints "still waiting" lines every ``every`` seconds while polling."""

    def __init__(self, component: str, what: str, every: float = 5.0) -> None:
        self.component = component
        self.what = what
        self.every = every
        self.start = time.monotonic()
        self._next = self.start + every

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every
            step(self.component, f"still waiting for {self.what} ({self.elapsed:.0f} s)")
