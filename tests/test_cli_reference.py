"""docs/cli.rst documents exactly the options the parser has (it cannot drift)."""

import argparse
import re
from pathlib import Path

from krylovadv.cli import build_parser

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.rst"


def test_cli_reference_page_matches_the_parser():
    # Option sets, not text: argparse's layout differs between Python versions.
    # Regenerate with: python docs/tools/make_cli_reference.py
    sections = re.split(r"\nkrylovadv (\w+)\n-+\n", PAGE.read_text(encoding="utf-8"))
    documented = {
        sections[i]: set(re.findall(r"--[a-z][a-z-]*", sections[i + 1]))
        for i in range(1, len(sections), 2)
    }
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actual = {
        name: {s for action in sub._actions for s in action.option_strings if s.startswith("--")}
        for name, sub in subparsers.choices.items()
    }
    assert documented == actual, "docs/cli.rst is stale: run docs/tools/make_cli_reference.py"
