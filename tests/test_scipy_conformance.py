"""scipy's own GMRES tests, run against krylovadv.gmres.

The tests are not copied: scipy's installed test modules are imported and their
gmres tests collected here, with ``krylovadv.gmres`` swapped in for scipy's
(``scipy/sparse/linalg/_isolve/tests/test_iterative.py`` restricted to gmres,
and the gmres cases of ``scipy/sparse/tests/test_array_api.py``).  Collection is
automatic: a test that a later scipy adds to those modules is collected and run
too, so a convention krylovadv misses shows up as a failure.  The only tests
left out are those that exercise another solver (named in :data:`NOT_GMRES`,
each with the reason, and asserted to still exist so the list cannot go stale).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import krylovadv

# Hard imports, not importorskip: a scipy without its test modules must fail
# this file loudly rather than skip the conformance check.
iterative = importlib.import_module("scipy.sparse.linalg._isolve.tests.test_iterative")
array_api = importlib.import_module("scipy.sparse.tests.test_array_api")

SCIPY_GMRES = iterative.gmres

#: Tests of test_iterative.py that never call gmres, and why they are not collected.
NOT_GMRES = {
    "test_show": "tfqmr's `show=True` printing; calls tfqmr only",
    "TestQMR": "qmr's left/right preconditioners M1, M2; calls qmr only",
}


def test_exclusions_still_exist():
    """Each exclusion names a test scipy still has (else the list is stale)."""
    for name in NOT_GMRES:
        assert hasattr(iterative, name), f"scipy no longer has {name}; drop it from NOT_GMRES"


# ---------------------------------------------------------------------------
# Swapping krylovadv.gmres in
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _krylovadv_gmres(monkeypatch):
    """Make scipy's test modules see krylovadv.gmres wherever they look up gmres."""
    monkeypatch.setattr(iterative, "gmres", krylovadv.gmres)
    monkeypatch.setattr(iterative, "_SOLVERS", [krylovadv.gmres])
    monkeypatch.setattr(spla, "gmres", krylovadv.gmres)


def _gmres_cases():
    """scipy's (matrix, rhs) cases for gmres, with krylovadv.gmres as the solver."""
    cases = []
    for case in iterative.cases:
        if case.solver is SCIPY_GMRES:
            ours = iterative.SingleTest(
                case.A, case.b, krylovadv.gmres, case.name.rsplit("-", 1)[0], case.convergence
            )
            cases.append(ours)
    return cases


GMRES_CASES = _gmres_cases()


def test_every_scipy_case_has_a_gmres_twin():
    names = {c.name for c in GMRES_CASES}
    assert len(names) == len(iterative.IterativeParams().cases) > 0


@pytest.fixture(params=GMRES_CASES, ids=[c.name for c in GMRES_CASES])
def case(request):
    """scipy's ``case`` fixture, restricted to gmres."""
    return request.param


@pytest.fixture(params=[krylovadv.gmres], ids=["gmres"])
def solver(request):
    """scipy's ``solver`` fixture, restricted to gmres."""
    return request.param


def _rebuilt(function: types.FunctionType) -> types.FunctionType:
    """A copy of scipy's test function with its marks; solver parametrisations keep gmres."""
    copy = types.FunctionType(
        function.__code__,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    functools.update_wrapper(copy, function, assigned=("__doc__", "__qualname__"), updated=())
    copy.__kwdefaults__ = function.__kwdefaults__
    marks = []
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "parametrize" and mark.args[0] == "solver":
            values = [v for v in mark.args[1] if v is SCIPY_GMRES or v == "gmres"]
            values = [krylovadv.gmres if v is SCIPY_GMRES else v for v in values]
            mark = pytest.mark.parametrize("solver", values, **mark.kwargs).mark
        marks.append(mark)
    copy.pytestmark = marks
    return copy


def _collect(module, exclude=()):
    """Every scipy test function and class of ``module`` (less ``exclude``), ready to collect."""
    collected = {}
    for name, obj in vars(module).items():
        if name in exclude:
            continue
        if name.startswith("test_") and inspect.isfunction(obj):
            collected[f"test_scipy_{name[5:]}"] = _rebuilt(obj)
        elif name.startswith("Test") and inspect.isclass(obj):
            collected[f"TestScipy{name[4:]}"] = obj
    return collected


globals().update(_collect(iterative, exclude=NOT_GMRES))

# test_array_api.py: only the solver test, and only its gmres parametrisation.
globals()["test_scipy_array_api_solvers"] = _rebuilt(array_api.test_solvers)


def test_collection_covers_scipys_gmres_tests():
    """The collected set is scipy's test list, less the named exclusions."""
    scipy_tests = {n for n in vars(iterative) if n.startswith(("test_", "Test"))}
    ours = {n for n in globals() if n.startswith(("test_scipy_", "TestScipy"))}
    expected = {
        f"test_scipy_{n[5:]}" if n.startswith("test_") else f"TestScipy{n[4:]}"
        for n in scipy_tests - set(NOT_GMRES)
    }
    assert expected <= ours
    assert "TestScipyGMRES" in ours and "test_scipy_maxiter" in ours


def test_array_api_solver_parametrisation_has_gmres():
    marks = [m for m in array_api.test_solvers.pytestmark if m.args[0] == "solver"]
    assert marks and "gmres" in marks[0].args[1]
    np.testing.assert_equal(len(array_api.square_sparrays) > 0, True)
