"""Sphinx configuration for the krylovadv documentation."""

import os
import sys
from importlib import metadata

# Make the in-repo package importable without installing it.
sys.path.insert(0, os.path.abspath(".."))

project = "krylovadv"
author = "krylovadv developers"
copyright = "2026, krylovadv developers"
try:
    release = metadata.version("krylovadv")
except metadata.PackageNotFoundError:
    release = "0.1.0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
]

# No intersphinx: docs are built without network access.
numpydoc_show_class_members = False
autodoc_member_order = "bysource"

templates_path = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

html_theme = "alabaster"
html_static_path = []
