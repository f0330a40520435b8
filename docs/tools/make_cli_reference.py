"""Write docs/cli.rst from the argparse parser (``python docs/tools/make_cli_reference.py``).

A test compares the committed page with this script's output, so the reference
cannot drift from the real command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from krylovadv.cli import build_parser

PAGE = Path(__file__).resolve().parents[1] / "cli.rst"


def render() -> str:
    """Return the reStructuredText of the CLI reference."""
    os.environ["COLUMNS"] = "88"  # argparse wraps help to the terminal width
    parser = build_parser()
    parser.prog = "krylovadv"
    lines = [
        "Command-line reference",
        "======================",
        "",
        "``krylovadv`` is a thin layer over the library: every command calls the functions",
        "documented in the API reference.  This page is generated from the parser",
        "(``docs/tools/make_cli_reference.py``); a test keeps it in sync.",
        "",
        "::",
        "",
    ]
    lines += ["   " + line if line else "" for line in parser.format_help().splitlines()]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        title = f"krylovadv {name}"
        lines += ["", title, "-" * len(title), "", "::", ""]
        lines += ["   " + line if line else "" for line in sub.format_help().splitlines()]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    sys.exit(0)
