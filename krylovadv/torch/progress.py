"""One rule for progress bars: on when stderr is a terminal, off otherwise.

Every long-running entry point of the package (``Attack.run``, :func:`evaluate`,
training, ``reproduce`` and the command line) takes ``progress=None`` meaning
"auto" and goes through :func:`progress_bar`, so the default is the same
everywhere: a bar in an interactive terminal, nothing in a pipe, a log file or
a test.  ``True`` / ``False`` force it on or off.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar", "progress_enabled"]


def progress_enabled(progress: bool | None) -> bool:
    """Resolve a ``progress`` argument: ``None`` means "is stderr a terminal?".

    Parameters
    ----------
    progress : bool or None
        ``True``/``False`` force the display on/off; ``None`` (auto) turns it on
        only when ``sys.stderr`` is attached to a terminal.

    Returns
    -------
    bool
    """
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    return bool(progress)


def progress_bar(
    iterable: Iterable[Any],
    *,
    progress: bool | None = None,
    desc: str | None = None,
    total: int | None = None,
    unit: str = "it",
) -> Iterable[Any]:
    """Wrap ``iterable`` in a tqdm bar on stderr if :func:`progress_enabled` says so.

    Parameters
    ----------
    iterable : iterable
        What to iterate.
    progress : bool or None
        See :func:`progress_enabled`.
    desc : str, optional
        Label of the bar.
    total : int, optional
        Length, if ``iterable`` has none.
    unit : str
        Unit of the counter.

    Returns
    -------
    iterable
        ``iterable`` itself when the display is off (no tqdm import, no output).
    """
    if not progress_enabled(progress):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, file=sys.stderr)
