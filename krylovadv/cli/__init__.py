"""Command-line interface: ``krylovadv <command>`` (a thin layer over the library).

:mod:`krylovadv.cli.parser` builds the parser (one function per command) and
:mod:`krylovadv.cli.commands` holds the handlers.  Neither imports torch at
import time, so ``krylovadv --help`` and ``krylovadv demo --solver-only`` work
with the core alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``krylovadv`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 done, 2 a wrong option, 1 a failed run, 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # for the "resume with: ..." line of an interrupted run
    if args.command == "demo":  # the other commands check in argparse
        for name, least in (("grid", 2), ("batch", 2), ("samples", 1), ("steps", 1)):
            if getattr(args, name) < least:
                print(f"krylovadv: error: --{name} must be at least {least}", file=sys.stderr)
                return 2
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
