"""Clean stops: SIGTERM behaves like Ctrl-C (SIGINT) while a long run is going.

Python turns SIGINT into :class:`KeyboardInterrupt` but lets SIGTERM (what
``kill``, schedulers and containers send) end the process on the spot, with no
chance to say where the progress is.  :func:`terminate_as_interrupt` makes
both raise :class:`KeyboardInterrupt`, so one ``except`` clause handles both:
the loop discards the unfinished batch (progress files are written atomically
after each finished one) and the caller prints where to resume from.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["RunInterrupted", "terminate_as_interrupt"]


class RunInterrupted(KeyboardInterrupt):
    """A long run was stopped by SIGINT/SIGTERM after saving its progress.

    Attributes
    ----------
    saved : str or None
        Where the progress is (``None``: nothing could be saved).
    detail : str
        What was finished, e.g. ``"3 of 8 batches of PGD-linf"``.
    """

    def __init__(self, saved: str | None, detail: str = "") -> None:
        super().__init__(saved)
        self.saved = saved
        self.detail = detail


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` like SIGINT.

    Does nothing outside the main thread (signal handlers can only be set there).
    The previous handler is restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
