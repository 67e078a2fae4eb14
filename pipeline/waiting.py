"""What a long wait is waiting for, and for how long, so no wait looks like a hang.

On a terminal: a spinner, the text and the elapsed time, gone once the wait is over (the caller
prints the outcome). Elsewhere (a log, CI, a pipe), where a spinner would not render: a line
every `every_s` seconds while the wait lasts (none for a wait shorter than that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

STILL_WAITING_EVERY_S = 15.0


def elapsed_text(seconds: float) -> str:
    """`42s`, `1m05s`: short enough for a status line."""
    whole = int(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


class Waiting:
    """A context manager showing `waiting for <what>` and the time since it began (or since the
    last `update`, which names a new thing being waited for)."""

    def __init__(self, console: Console, what: str, every_s: float = STILL_WAITING_EVERY_S) -> None:
        self.console = console
        self.what = what
        self.every_s = every_s
        self.since = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._reporter: threading.Thread | None = None

    def __enter__(self) -> Waiting:
        if self.console.is_terminal:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[progress.description]{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._description())
        else:
            self._reporter = threading.Thread(target=self._report, name="waiting", daemon=True)
            self._reporter.start()
        return self

    def _description(self) -> str:
        return f"waiting for {self.what}"

    def update(self, what: str) -> None:
        """Now waiting for `what`: the elapsed time starts again."""
        with self._lock:
            self.what = what
            self.since = time.monotonic()
            if self._progress is not None and self._task is not None:
                # a new task: its elapsed-time column starts from zero
                self._progress.remove_task(self._task)
                self._task = self._progress.add_task(self._description())

    def _report(self) -> None:
        while not self._done.wait(self.every_s):
            with self._lock:
                line = f"  … {self._description()} ({elapsed_text(self.elapsed_s)})"
            self.console.print(line, markup=False, highlight=False)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.since

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._reporter is not None:
            self._reporter.join()
        if self._progress is not None:
            self._progress.stop()


@contextmanager
def waiting(
    console: Console | None, what: str, every_s: float = STILL_WAITING_EVERY_S
) -> Iterator[Waiting | None]:
    """`Waiting` on `console`; nothing at all without one (library callers, tests)."""
    if console is None:
        yield None
        return
    with Waiting(console, what, every_s) as shown:
        yield shown
