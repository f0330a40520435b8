"""Shared test configuration: hypothesis profiles for the core suite.

The ``ci`` profile is loaded by default; choose another with the environment
variable ``HYPOTHESIS_PROFILE`` (e.g. ``HYPOTHESIS_PROFILE=dev`` for more,
randomized examples while developing).
"""

import os

from hypothesis import settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    database=None,
)
settings.register_profile("dev", max_examples=200, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
