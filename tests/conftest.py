"""Shared test configuration: hypothesis profiles for the core suite.

The ``ci`` profile is loaded by default; choose another with the environment
variable ``HYPOTHESIS_PROFILE``:

``ci``
    25 derandomized examples per property: the default suite, reproducible.
``dev``
    200 randomized examples, for development.
``fuzz``
    2,500 randomized examples per property (``nox -s fuzz``); with
    ``tests/test_fuzz.py`` that is over 10,000 problems.  ``FUZZ_EXAMPLES``
    overrides the count (e.g. for a shorter run on a small machine).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    database=None,
)
settings.register_profile("dev", max_examples=200, deadline=None, print_blob=True)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2500")),
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter):
    """Close a fuzz run with the number of problems and of silent failures."""
    import sys

    fuzz = sys.modules.get("krylovadv.testing.fuzz")
    if fuzz is not None and fuzz.TALLY.problems:
        terminalreporter.write_line(fuzz.TALLY.summary())
