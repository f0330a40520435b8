"""Architecture rules: the backend-agnostic core never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import krylovadv

PACKAGE = Path(krylovadv.__file__).resolve().parent
#: Files directly under krylovadv/ (the core); krylovadv/torch/ may import torch.
CORE_FILES = sorted(PACKAGE.glob("*.py"))


def torch_imports(source: str) -> list[int]:
    """Line numbers of every ``import torch...`` / ``from torch... import``, at any depth."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "torch" or name.startswith("torch.") for name in names):
            lines.append(node.lineno)
    return lines


def test_importing_the_core_does_not_import_torch():
    code = (
        "import sys, krylovadv, krylovadv.gmres, krylovadv.arnoldi, krylovadv.power, "
        "krylovadv.finite_difference, krylovadv.operators, krylovadv.givens, "
        "krylovadv.status, krylovadv._backend\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_core_files_have_no_torch_import():
    assert {"gmres.py", "arnoldi.py", "operators.py"} <= {p.name for p in CORE_FILES}
    offenders = {
        p.name: lines for p in CORE_FILES if (lines := torch_imports(p.read_text("utf-8")))
    }
    assert offenders == {}


def test_the_static_check_detects_torch_imports():
    for snippet in (
        "import torch",
        "import numpy, torch.nn as nn",
        "from torch import nn",
        "from torch.func import jvp",
        "def f():\n    import torch\n",
    ):
        assert torch_imports(snippet), snippet
    for snippet in ("import torchvision_free", "from .torch import x", '"""import torch"""'):
        assert not torch_imports(snippet), snippet
