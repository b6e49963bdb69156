"""Progress bars that suit where stderr goes.

On a terminal, :func:`progress_bar` is a ``tqdm`` bar. When stderr is not a terminal (a CI log, a file, a
pipe), a redrawn bar would fill the log with carriage returns, so it prints plain lines instead: one at
each further tenth of the total at most every ``min_interval`` seconds, one at least every
``max_interval`` seconds while work goes on, and a last one when a bar that printed anything closes. The
lines use tqdm's own meter text (count, elapsed, rate, remaining).
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any, Protocol

__all__ = ["PlainProgress", "Progress", "progress_bar"]


class Progress(Protocol):
    """What :func:`progress_bar` returns (a tqdm bar satisfies it)."""

    def update(self, n: int = 1) -> Any:
        """Count ``n`` more units done."""

    def close(self) -> None:
        """Finish the bar."""


class PlainProgress:
    """A progress counter that prints whole lines (no ``\\r``), for logs.

    Parameters
    ----------
    total : int
        Units of work expected.
    desc : str
        What is being done (prefix of each line).
    unit : str
        Name of one unit.
    file : file-like, optional
        Where lines go (default: ``sys.stderr`` at the time of each line).
    min_interval : float
        Seconds from the start, and between two lines, before a tenth-of-the-total line is printed (so that
        short jobs print nothing).
    max_interval : float
        Seconds after which a line is printed even if the next tenth is not reached.
    clock : callable, optional
        Seconds as a float (default: ``time.monotonic``).
    """

    def __init__(self, *, total: int, desc: str, unit: str = "it", file: IO[str] | None = None,
                 min_interval: float = 5.0, max_interval: float = 30.0, clock: Any = time.monotonic) -> None:
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.n = 0
        self._file = file
        self._min, self._max = float(min_interval), float(max_interval)
        self._clock = clock
        self._start = self._last = clock()
        self._printed_n: int | None = None
        self._tenth = 0
        self._closed = False

    def _line(self, now: float) -> None:
        from tqdm import tqdm

        meter = tqdm.format_meter(self.n, self.total or None, now - self._start, prefix=self.desc, unit=self.unit,
                                  bar_format="{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} "
                                             "[{elapsed}<{remaining}, {rate_fmt}]" if self.total else None)
        print(meter.replace("\r", " "), file=self._file or sys.stderr, flush=True)
        self._last, self._printed_n = now, self.n

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; print a line when one is due."""
        self.n += n
        now = self._clock()
        tenth = (10 * self.n) // self.total if self.total else 0
        next_tenth = tenth > self._tenth and now - self._last >= self._min
        if next_tenth or now - self._last >= self._max:
            self._tenth = tenth
            self._line(now)

    def close(self) -> None:
        """Print the final count if any line was printed and it is not the last one shown."""
        if not self._closed and self._printed_n is not None and self._printed_n != self.n:
            self._line(self._clock())
        self._closed = True

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Off:
    """A disabled bar: counts nothing, prints nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        """Ignore progress."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def progress_bar(*, total: int, desc: str, unit: str = "it", disable: bool = False, leave: bool = False) -> Progress:
    """A progress bar over ``total`` units on stderr: tqdm on a terminal, :class:`PlainProgress` lines otherwise.

    Parameters
    ----------
    total : int
        Units of work expected.
    desc : str
        What is being done.
    unit : str
        Name of one unit.
    disable : bool
        Show nothing.
    leave : bool
        Keep tqdm's finished bar on the terminal.

    Returns
    -------
    Progress
        ``update(n)`` and ``close()``.
    """
    if disable:
        return _Off()
    if _stderr_is_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=leave)
    return PlainProgress(total=total, desc=desc, unit=unit)
