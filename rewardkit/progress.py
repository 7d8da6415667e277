"""Console progress for long commands: a heading per stage with its time, bars named by what they run, and plain
lines instead of bars when the output is not a terminal.

    console = Console()                                     # writes to stderr; bars only on a terminal
    with console.stage("Reward models", "6 runs, seed 0"):  # "[2/5] Reward models: 6 runs, seed 0" ... "done in 31 s"
        with console.bar(68, "RM from SFT, 1,091 comparisons, seed 0") as bar:
            for step in range(68):
                ...
                bar.update(loss=0.61)
    console.seconds                                         # {"Reward models": 31.2}

Redirected to a file, a bar becomes at most five lines (start, each quarter, end), not a stream of carriage
returns. Library code that is not handed a console calls `progress_bar(total, desc, enabled)`, which applies the
same rule to stderr. `quiet_libraries()` keeps other libraries' progress bars out of the way.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm.auto import tqdm

_plain_everywhere = False


def use_plain_lines(plain: bool = True) -> None:
    """Plain lines for every bar of this process, terminal or not: for worker processes that share the parent's
    terminal, where redrawn bars from several processes would overwrite each other."""
    global _plain_everywhere
    _plain_everywhere = plain


def _is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class PlainBar:
    """A progress bar as a few lines of text: when it starts, at every quarter (or after `every_seconds` of
    silence), and when it ends."""

    def __init__(self, total: int, desc: str, stream: TextIO, unit: str = "steps", every_seconds: float = 60.0,
                 initial: int = 0):
        self.total, self.desc, self.stream, self.unit = max(int(total), 0), desc, stream, unit
        self.every_seconds = every_seconds
        self.count, self.postfix = initial, ""
        self.started = self.last_print = time.perf_counter()
        self._next_quarter = 1 + (4 * initial // self.total if self.total else 0)  # resumed: quarters already past
        self._closed = False
        self._print(f"{self.desc}: {self.total:,} {self.unit}")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _status(self, final: bool = False) -> str:
        elapsed = f"{'in' if final else 'after'} {format_seconds(time.perf_counter() - self.started)}"
        text = f"{self.desc}: {self.count:,}/{self.total:,} {self.unit} {elapsed}"
        return f"{text} ({self.postfix})" if self.postfix else text

    def update(self, n: int = 1, **postfix: object) -> None:
        self.count += n
        if postfix:
            self.set_postfix(**postfix)
        now = time.perf_counter()
        quarter = self.total and self.count * 4 >= self._next_quarter * self.total
        if self.count < self.total and (quarter or now - self.last_print >= self.every_seconds):
            while self.total and self.count * 4 >= self._next_quarter * self.total:
                self._next_quarter += 1
            self.last_print = now
            self._print(self._status())

    def set_postfix(self, **postfix: object) -> None:
        self.postfix = ", ".join(f"{key} {value}" for key, value in postfix.items())

    def add_to_total(self, n: int) -> None:
        """`n` more than announced (e.g. responses drawn again); the next lines count to the new total."""
        self.total += n

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print(self._status(final=True))

    def __enter__(self) -> PlainBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TerminalBar:
    """tqdm with the same `update(n, **postfix)` call as `PlainBar`."""

    def __init__(self, total: int, desc: str, stream: TextIO, unit: str = "steps", enabled: bool = True,
                 initial: int = 0):
        self._bar = tqdm(total=total, desc=desc, file=stream, unit=f" {unit}", dynamic_ncols=True,
                         disable=not enabled, leave=True, initial=initial)

    def update(self, n: int = 1, **postfix: object) -> None:
        if postfix:
            self.set_postfix(**postfix)
        self._bar.update(n)

    def set_postfix(self, **postfix: object) -> None:
        self._bar.set_postfix({key: str(value) for key, value in postfix.items()}, refresh=False)

    def add_to_total(self, n: int) -> None:
        self._bar.total += n
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> TerminalBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


ProgressBar = PlainBar | TerminalBar


def progress_bar(total: int, desc: str, enabled: bool = True, stream: TextIO | None = None,
                 unit: str = "steps", plain: bool | None = None, initial: int = 0) -> ProgressBar:
    """A bar named `desc` on `stream` (stderr): tqdm on a terminal, a few plain lines otherwise (or when `plain`, e.g.
    from one of several processes sharing a terminal), nothing when not `enabled`; `initial`: already done (resumed)."""
    stream = stream or sys.stderr
    if enabled and (plain or _plain_everywhere or not _is_terminal(stream)):
        return PlainBar(total, desc, stream, unit, initial=initial)
    return TerminalBar(total, desc, stream, unit, enabled=enabled, initial=initial)


class Console:
    """Stage headings with their times and named progress bars, on one stream (stderr by default)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, prefix: str = ""):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.prefix = prefix  # e.g. "[seed 1] ", before every heading
        self.seconds: dict[str, float] = {}
        self._stages = 0

    def print(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str, detail: str = "", total: int | None = None) -> Iterator[None]:
        """A heading ("[seed 0] 2/7 Reward models: 6 runs"), then the stage, then its time; the seconds are kept in
        `self.seconds[name]` whether or not anything is printed."""
        self._stages += 1
        number = f"{self._stages}/{total} " if total else ""
        self.print(f"{self.prefix}{number}{name}" + (f": {detail}" if detail else ""))
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 2)
        self.print(f"{self.prefix}{number}{name}: done in {format_seconds(self.seconds[name])}")

    def bar(self, total: int, desc: str, unit: str = "steps") -> ProgressBar:
        return progress_bar(total, desc, self.enabled, self.stream, unit)


def format_seconds(seconds: float) -> str:
    """12.3 s, 4.2 min."""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """No progress bars from transformers (e.g. "Writing model shards" on every save) while a command draws its
    own; restored afterwards. Its warnings still show."""
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
