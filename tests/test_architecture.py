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


# --- the module graph: no import cycles, no oversized modules ----------------------------

#: The most lines a module may have (the project's rule: one concept per module).
MAX_MODULE_LINES = 800


def module_name(path: Path) -> str:
    """``krylovadv.torch.training.config`` for .../krylovadv/torch/training/config.py."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks (imports there never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The krylovadv modules that module ``name`` imports, at any depth (lazy ones too).

    ``from pkg import x`` counts as importing ``pkg.x`` when that is a module,
    else ``pkg``; imports under ``if TYPE_CHECKING:`` do not count.
    """
    tree = ast.parse(source)
    skip = _type_checking_lines(tree)
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if child in known else target)
    return {m for m in found if m in known and m != name}


def module_graph() -> dict[str, set[str]]:
    """Module name → the krylovadv modules it imports."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {
        name: imported_modules(path.read_text("utf-8"), name, path.name == "__init__.py", known)
        for name, path in paths.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles_inside_krylovadv():
    graph = module_graph()
    assert "krylovadv.torch.training.trainer" in graph  # the walk sees the packages
    assert "krylovadv.torch.training.config" in graph["krylovadv.torch.training.trainer"]
    assert find_cycles(graph) == []


def test_the_zoo_depends_on_training_and_never_the_reverse():
    graph = module_graph()
    assert "krylovadv.torch.training" in graph["krylovadv.torch.zoo"]
    training = [m for m in graph if m.startswith("krylovadv.torch.training")]
    assert not [m for m in training if "krylovadv.torch.zoo" in graph[m]]


def test_the_cycle_check_detects_cycles():
    known = {"p", "p.a", "p.b", "p.c"}
    graph = {
        "p": set(),
        "p.a": imported_modules("from .b import f", "p.a", False, known),
        "p.b": imported_modules("def g():\n    from . import c\n", "p.b", False, known),
        "p.c": imported_modules("import p.a", "p.c", False, known),
    }
    assert graph["p.b"] == {"p.c"}  # a lazy import is still a dependency
    assert find_cycles(graph) == [["p.a", "p.b", "p.c"]]
    lazy_typing = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n"
    assert imported_modules(lazy_typing, "p.b", False, known) == set()
    assert find_cycles({"p.a": {"p.b"}, "p.b": set()}) == []


def test_no_module_over_the_line_limit():
    sizes = {module_name(p): len(p.read_text("utf-8").splitlines()) for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 30
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


#: Core modules that may reach into the torch adapter: the command line, lazily,
#: inside its handlers (building the parser imports no torch).
CLI_MODULES = {"krylovadv.cli", "krylovadv._cli_training", "krylovadv.__main__"}


def test_imports_point_one_way_core_then_torch_adapter_then_cli():
    graph = module_graph()
    core = {m for m in graph if not m.startswith("krylovadv.torch")} - CLI_MODULES
    assert {"krylovadv.gmres", "krylovadv.operators"} <= core
    assert {
        m: graph[m] for m in core if any(d.startswith("krylovadv.torch") for d in graph[m])
    } == {}
    assert [m for m in graph if CLI_MODULES & graph[m] and m not in CLI_MODULES] == []


def test_building_the_command_line_parser_does_not_import_torch():
    code = (
        "import sys, krylovadv.cli\n"
        "krylovadv.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'krylovadv --help would pay for importing torch'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
