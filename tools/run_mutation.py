"""Run mutmut on one krylovadv module at a time, each with its own fast test subset.

mutmut 3 reads its configuration from ``[tool.mutmut]`` in ``pyproject.toml`` only,
so a per-module run copies the package and the tests into a scratch directory,
writes that module's ``only_mutate`` and test selection there, and runs
``mutmut run`` in the copy (the working tree never gets a ``mutants/`` folder).
mutmut then maps each mutated function to the tests that call it and runs only
those for each mutant.

Usage::

    python tools/run_mutation.py givens finite_difference   # chosen modules
    python tools/run_mutation.py torch/attacks/apgd torch/evaluate   # torch adapter modules
    python tools/run_mutation.py --core                     # every core module
    python tools/run_mutation.py --all                      # core + torch adapter

The last line per module is ``module: killed K / survived S / timeout T / total N``;
``--keep DIR`` keeps the scratch copy so that ``mutmut show <name>`` can be run there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module (path under krylovadv/) -> the fast tests that exercise it.
CORE = {
    "givens.py": ["tests/test_givens.py", "tests/test_testing_mutation_givens.py"],
    "finite_difference.py": [
        "tests/test_finite_difference.py",
        "tests/test_testing_mutation_fd.py",
    ],
    "status.py": ["tests/test_testing_mutation_status.py", "tests/test_hard_families.py"],
    "power.py": ["tests/test_power.py", "tests/test_testing_mutation_power.py"],
    "arnoldi.py": ["tests/test_arnoldi.py", "tests/test_testing_mutation_arnoldi.py"],
    "gmres.py": [
        "tests/test_gmres.py",
        "tests/test_hard_families.py",
        "tests/test_testing_mutation_gmres.py",
    ],
    "operators.py": [
        "tests/test_operators.py",
        "tests/test_operator_interop.py",
        "tests/test_testing_mutation_operators.py",
    ],
    "_backend.py": [
        "tests/test_gmres.py",
        "tests/test_operators.py",
        "tests/test_testing_mutation_backend.py",
    ],
    "cg.py": ["tests/test_cg.py", "tests/test_testing_mutation_cg.py"],
    "minres.py": ["tests/test_minres.py", "tests/test_testing_mutation_minres.py"],
    "lanczos.py": ["tests/test_eigsh.py", "tests/test_testing_mutation_lanczos.py"],
    "_symmetric.py": [
        "tests/test_cg.py",
        "tests/test_minres.py",
        "tests/test_symmetric_conventions.py",
        "tests/test_testing_mutation_internals.py",
        "tests/test_testing_mutation_solver_state.py",
    ],
    "_system.py": [
        "tests/test_gmres.py",
        "tests/test_gmres_conventions.py",
        "tests/test_testing_mutation_internals.py",
    ],
    "_gmres_state.py": [
        "tests/test_gmres.py",
        "tests/test_testing_mutation_internals.py",
        "tests/test_testing_mutation_solver_state.py",
    ],
    "_results.py": [
        "tests/test_gmres.py",
        "tests/test_cg.py",
        "tests/test_testing_mutation_internals.py",
    ],
    "_start.py": [
        "tests/test_power.py",
        "tests/test_eigsh.py",
        "tests/test_testing_mutation_internals.py",
    ],
}
TORCH = {
    "torch/attacks/apgd.py": [
        "tests/torch/test_attacks_apgd.py",
        "tests/torch/test_attacks_baseline.py",
        "tests/torch/test_testing_mutation_apgd.py",
    ],
    "torch/attacks/square.py": [
        "tests/torch/test_square_l2.py",
        "tests/torch/test_attacks_baseline.py",
        "tests/torch/test_testing_mutation_square.py",
    ],
    "torch/attacks/pgd.py": [
        "tests/torch/test_attacks.py",
        "tests/torch/test_attacks_reference.py",
        "tests/torch/test_testing_mutation_pgd.py",
    ],
    "torch/attacks/fgsm.py": [
        "tests/torch/test_attacks.py",
        "tests/torch/test_attacks_reference.py",
        "tests/torch/test_testing_mutation_pgd.py",
    ],
    "torch/attacks/norms.py": [
        "tests/torch/test_attacks.py",
        "tests/torch/test_testing_mutation_attack_base.py",
    ],
    "torch/attacks/base.py": [
        "tests/torch/test_attacks.py",
        "tests/torch/test_testing_mutation_attack_base.py",
    ],
    "torch/attacks/cascade.py": [
        "tests/torch/test_attacks_baseline.py",
        "tests/torch/test_testing_mutation_attack_base.py",
    ],
    "torch/attacks/so.py": [
        "tests/torch/test_attacks_second_order.py",
        "tests/torch/test_testing_mutation_so.py",
    ],
    "torch/attacks/soae.py": [
        "tests/torch/test_attacks_second_order.py",
        "tests/torch/test_soae_minres.py",
        "tests/torch/test_testing_mutation_soae.py",
    ],
    "torch/hessian.py": [
        "tests/torch/test_hessian.py",
        "tests/torch/test_hessian_scipy.py",
        "tests/torch/test_gauss_newton.py",
        "tests/torch/test_testing_mutation_hessian.py",
    ],
    "torch/hessian_products.py": [
        "tests/torch/test_hessian.py",
        "tests/torch/test_hessian_scipy.py",
        "tests/torch/test_gauss_newton.py",
        "tests/torch/test_testing_mutation_hessian.py",
    ],
    "torch/evaluate.py": [
        "tests/torch/test_evaluate.py",
        "tests/torch/test_testing_mutation_evaluate.py",
    ],
}
TABLE = {**CORE, **TORCH}


def _key(name: str) -> str:
    for key in TABLE:
        if key.removesuffix(".py") == name.removesuffix(".py"):
            return key
    raise SystemExit(f"unknown module {name!r}; choose from {sorted(TABLE)}")


def _config(module: str, tests: list[str]) -> str:
    selection = [t for t in tests if (ROOT / t).exists()]
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["krylovadv"]\n'
        f'only_mutate = ["krylovadv/{module}"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(selection)}\n"
        'pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider"]\n'
        "timeout_multiplier = 5.0\n"
    )


def run_module(module: str, keep: Path | None, max_children: int) -> dict[str, int]:
    """Mutate ``krylovadv/<module>`` in a scratch copy; return mutmut's counts."""
    work = keep if keep is not None else Path(tempfile.mkdtemp(prefix="krylovadv-mutation-"))
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("krylovadv", "tests", "docs"):
        shutil.copytree(ROOT / sub, work / sub, dirs_exist_ok=True, ignore=_ignore)
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"\n\[tool\.mutmut\]\n(?:[^\[].*\n|\n)*", "\n", text)
    (work / "pyproject.toml").write_text(text + _config(module, TABLE[module]))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(
        ["mutmut", "run", "--max-children", str(max_children)], cwd=work, env=env, check=False
    )
    subprocess.run(["mutmut", "export-cicd-stats"], cwd=work, env=env, check=False)
    stats_file = work / "mutants" / "mutmut-cicd-stats.json"
    if not stats_file.exists():
        # mutmut 3 mutates functions only; a module of constants (an enum and a dict of
        # messages, as status.py) leaves it nothing that a test calls.
        print(f"{module}: mutmut found no mutant that the selected tests exercise")
        stats = dict.fromkeys(("killed", "survived", "timeout", "no_tests", "total"), 0)
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        return stats
    stats = json.loads(stats_file.read_text())
    results = subprocess.run(
        ["mutmut", "results"], cwd=work, env=env, check=False, capture_output=True, text=True
    ).stdout
    print(results)
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return stats


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", "_build", "mutants", ".hypothesis")}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run each chosen module; print one line per module."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="modules under krylovadv/, e.g. givens")
    parser.add_argument("--core", action="store_true", help="every core module")
    parser.add_argument("--all", action="store_true", help="core and torch adapter modules")
    parser.add_argument("--keep", type=Path, help="keep the scratch copy here (one module)")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutant workers")
    args = parser.parse_args(argv)
    chosen = [_key(m) for m in args.modules]
    if args.core or args.all:
        chosen += list(CORE)
    if args.all:
        chosen += list(TORCH)
    if not chosen:
        parser.error("name modules, or pass --core or --all")
    lines = []
    for module in dict.fromkeys(chosen):
        s = run_module(module, args.keep, args.max_children)
        lines.append(
            f"{module}: killed {s['killed']} / survived {s['survived']} / "
            f"timeout {s['timeout']} / no tests {s['no_tests']} / total {s['total']}"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
