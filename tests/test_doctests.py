"""The examples in the docstrings of every core module and of krylovadv.testing run and hold.

CI runs only ``python -m pytest``; this file makes the doctests part of it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import krylovadv
import krylovadv.testing

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted(
    f"krylovadv.{m.name}"
    for m in pkgutil.iter_modules(krylovadv.__path__)
    if not m.ispkg and m.name not in ("__main__",)
)
TESTING = sorted(
    f"krylovadv.testing.{m.name}" for m in pkgutil.iter_modules(krylovadv.testing.__path__)
)
MODULES = ["krylovadv", *CORE, "krylovadv.testing", *TESTING]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    with np.printoptions(legacy=False):
        result = doctest.testmod(
            module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_module_list_is_complete():
    # A new core module is picked up without editing this file.
    assert {"krylovadv.gmres", "krylovadv.givens", "krylovadv.testing.families"} <= set(MODULES)
    examples = sum(
        len(t.examples)
        for name in MODULES
        for t in doctest.DocTestFinder().find(importlib.import_module(name))
    )
    assert examples >= 20, examples


def test_every_tutorial_script_is_executed_by_a_test():
    scripts = sorted((ROOT / "docs").rglob("*.py"))
    scripts = [s for s in scripts if "tools" not in s.parts and s.name != "conf.py"]
    assert scripts, "no tutorial scripts found under docs/"
    tests = "\n".join(p.read_text("utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    missing = [str(s.relative_to(ROOT)) for s in scripts if s.name not in tests]
    assert missing == [], f"tutorial scripts no test runs: {missing}"
