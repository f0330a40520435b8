"""Fail-fast checks of output locations, run before any computation.

A run that computes for minutes and then fails on a read-only or mistyped
output folder wastes the user's time; these checks find such a folder before
the work starts.  They probe by actually creating (and removing) a file, since
permission bits say nothing about read-only mounts, ACLs or the superuser.
Nothing is left behind: a folder that does not exist yet is not created.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_output_dir", "check_output_file"]


def _nearest_existing(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _probe_writable(folder: Path, what: str, shown: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        where = "" if folder == shown else f" (its nearest existing folder {folder})"
        raise ValueError(
            f"{what}: cannot write to {shown}{where}: {reason}; choose a writable folder."
        ) from None


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Check that ``path`` is, or can be created as, a writable folder.

    Parameters
    ----------
    path : str or path-like
        The output folder (need not exist).
    what : str
        The option or argument to name in the message (e.g. ``"--output"``).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If ``path`` is a file, lies under a file, or its nearest existing folder
        is not writable; the message names ``what`` and the path.
    """
    path = Path(path)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ValueError(
            f"{what}: {path} cannot be a folder: {existing} is a file; choose another path."
        )
    _probe_writable(existing, what, path)
    return path


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """Check that the file ``path`` can be written (its folder exists or can be created).

    Parameters
    ----------
    path : str or path-like
        The output file (need not exist; an existing one must be a file).
    what : str
        The option or argument to name in the message.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If ``path`` is a folder or its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what}: {path} is a folder; give a file name.")
    check_output_dir(path.parent if str(path.parent) else Path("."), what)
    return path
