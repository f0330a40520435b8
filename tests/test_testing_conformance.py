"""The conformance checker flags planted lies and passes honest solvers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import krylovadv
from krylovadv.testing import ConformanceReport, check_solver

PROBLEMS = 3  # per group and dtype: enough for each planted lie to show
SIZES = (4, 16)


def honest(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
    return spla.gmres(A, b, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter)


def failed_items(report: ConformanceReport) -> set[str]:
    return {item.name for item in report.items if not item.passed}


@pytest.fixture(scope="module")
def scipy_gmres_report():
    return check_solver(honest, name="scipy gmres", problems=PROBLEMS, sizes=SIZES)


def test_scipy_gmres_passes_every_check(scipy_gmres_report):
    assert failed_items(scipy_gmres_report) == set(), str(scipy_gmres_report)
    assert scipy_gmres_report.passed
    assert all(item.problems >= 1 for item in scipy_gmres_report.items)


def test_krylovadv_gmres_passes_every_check():
    report = check_solver(krylovadv.gmres, problems=PROBLEMS, sizes=SIZES)
    assert failed_items(report) == set(), str(report)


def liar_claims_convergence(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
    x, _ = honest(A, b, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter)
    return x * 1.01, 0  # a 1% wrong answer, flagged as converged


def liar_mutates_x0(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
    x, info = honest(A, b, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter)
    if x0 is not None:
        x0[:] = x
    return x, info


def liar_upcasts(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
    x, info = honest(A, b, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter)
    return x.astype(np.float64), info


def liar_keeps_x0_for_zero_rhs(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
    if not np.any(b) and x0 is not None:
        return x0.copy(), 0
    return honest(A, b, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter)


def liar_swallows_nan(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
    if np.isnan(b).any():  # replaces NaN by 0 and reports success
        return honest(A, np.nan_to_num(b), x0=x0, rtol=rtol, atol=atol, maxiter=maxiter)[0], 0
    return honest(A, b, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter)


def liar_ignores_maxiter(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
    return honest(A, b, x0=x0, rtol=rtol, atol=atol, maxiter=None)


def liar_gives_up_silently(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
    x, info = honest(A, b, x0=x0, rtol=max(rtol, 1e-7), atol=atol, maxiter=maxiter)
    return x, 0 if rtol < 1e-7 else info  # stops at 1e-7 and calls it converged


@pytest.mark.parametrize(
    ("liar", "expected"),
    [
        (
            liar_claims_convergence,  # info = 0 always: every check that needs info != 0
            {
                "honest flag (easy)",
                "honest flag (hard)",
                "no silent stagnation",
                "NaN input",
                "NaN operator",
                "maxiter respected",
            },
        ),
        (liar_mutates_x0, {"x0 untouched"}),
        (liar_upcasts, {"dtype preserved"}),
        (liar_keeps_x0_for_zero_rhs, {"zero rhs"}),
        (liar_swallows_nan, {"NaN input"}),
        (liar_ignores_maxiter, {"maxiter respected"}),
        # Lies below rtol = 1e-7; in float32 only the stagnation check asks for that
        # (the maxiter check asks for 10 eps = 1.2e-6).
        (liar_gives_up_silently, {"no silent stagnation"}),
    ],
)
def test_each_planted_lie_is_flagged_and_nothing_else(liar, expected):
    # float32 alone: every lie shows there, at half the cost.
    report = check_solver(liar, problems=PROBLEMS, sizes=SIZES, dtypes=(np.float32,))
    failed = failed_items(report)
    assert expected <= failed, str(report)
    # The checks are independent: a lie shows only where it was planted.
    assert failed <= expected, str(report)
    for name in expected:
        item = report[name]
        assert item.failures >= 1 and item.detail, item


def test_report_renders_every_row():
    report = check_solver(liar_upcasts, problems=1, dtypes=(np.float32,))
    text, md, rst = str(report), report.to_markdown(), report.to_rst()
    for item in report.items:
        assert item.name in text and item.name in md and item.name in rst
    assert text.splitlines()[0].endswith("FAIL")
    assert "| dtype preserved | FAIL |" in md
    with pytest.raises(KeyError, match="no check named"):
        report["speed"]


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="structure"):
        check_solver(honest, structure="banded")
    with pytest.raises(ValueError, match="problems"):
        check_solver(honest, problems=0)


def test_the_same_seed_gives_the_same_report():
    a = check_solver(liar_claims_convergence, problems=2, seed=5)
    b = check_solver(liar_claims_convergence, problems=2, seed=5)
    assert [(i.name, i.passed, i.problems, i.detail) for i in a.items] == [
        (i.name, i.passed, i.problems, i.detail) for i in b.items
    ]
