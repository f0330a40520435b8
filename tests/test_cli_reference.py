"""docs/cli.rst documents exactly the options the parser has (it cannot drift)."""

import argparse
import re
from pathlib import Path

from krylovadv.cli import build_parser

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.rst"


def documented_options() -> dict[str, set[str]]:
    sections = re.split(r"\nkrylovadv (\w+)\n-+\n", PAGE.read_text(encoding="utf-8"))
    options = {}
    for i in range(1, len(sections), 2):
        found = set()
        for line in sections[i + 1].splitlines():
            if line.strip().startswith("-"):  # an option-list line: names, then help
                names = line.strip().split("  ")[0]
                found.update(re.findall(r"--[a-z0-9][a-z0-9-]*", names))
        options[sections[i]] = found
    return options


def test_cli_reference_page_matches_the_parser():
    # Option sets, not text: argparse's layout differs between Python versions.
    # Regenerate with: python docs/tools/make_cli_reference.py
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actual = {
        name: {s for action in sub._actions for s in action.option_strings if s.startswith("--")}
        for name, sub in subparsers.choices.items()
    }
    assert documented_options() == actual, (
        "docs/cli.rst is stale: run python docs/tools/make_cli_reference.py"
    )
