"""scipy's conventions in krylovadv.cg, minres and eigsh, checked against scipy itself.

The same rules as :func:`krylovadv.gmres` (``tests/test_gmres_conventions.py``):
the result is scipy's pair ``(x, info)`` (``(w, v)`` or ``w`` for ``eigsh``),
``result.sample(i)`` is sample ``i`` and ``result.batch_size`` is ``B``; inputs
follow ``krylovadv._system.make_system``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

from krylovadv import SolverStatus, cg, eigsh, minres

SOLVERS = {"cg": (cg, sla.cg), "minres": (minres, sla.minres)}


def _spd(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, n))
    return Z @ Z.T / n + np.eye(n), rng.standard_normal(n)


@pytest.mark.parametrize("name", SOLVERS)
def test_result_is_scipys_pair(name):
    ours, theirs = SOLVERS[name]
    A, b = _spd(6)
    result = ours(A, b, rtol=1e-10)
    x_ref, info_ref = theirs(A, b, rtol=1e-10)
    x, info = result
    assert x is result.x and info == info_ref == 0
    assert result[0] is result.x and result[1] == result.info == 0 and len(result) == 2
    np.testing.assert_allclose(x, x_ref, rtol=1e-7)
    with pytest.raises(TypeError, match="sample"):
        result["x"]


@pytest.mark.parametrize("name", SOLVERS)
def test_sample_and_batch_size(name):
    ours, _ = SOLVERS[name]
    A, b = _spd(5)
    batch = ours(np.stack([A, 2 * A, 3 * A]), np.stack([b, b, -b]), rtol=1e-10)
    assert batch.batch_size == 3 and batch.batched and len(batch) == 2
    for i, scale in enumerate([1, 2, 3]):
        alone = ours(scale * A, b if i < 2 else -b, rtol=1e-10)
        assert alone.batch_size == 1 and not alone.batched
        one = batch.sample(i)
        assert one.status == alone.status and one.iterations == alone.iterations
        np.testing.assert_allclose(one.x, alone.x, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(batch[1], batch.info)


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix, on purpose
def test_column_vector_lists_and_matrices_as_scipy(name):
    ours, theirs = SOLVERS[name]
    A, b = _spd(4, seed=1)
    x_ref, _ = theirs(A, b, rtol=1e-10)
    for A_in, b_in in (
        (A, b[:, None]),  # scipy's column vector: one system, x of shape (n,)
        (A.tolist(), b.tolist()),
        (np.asmatrix(A), np.asmatrix(b).T),
    ):
        result = ours(A_in, b_in, rtol=1e-10)
        assert result.x.shape == (4,) and not result.batched
        np.testing.assert_allclose(result.x, x_ref, rtol=1e-7)


@pytest.mark.parametrize("name", SOLVERS)
def test_integer_data_is_upcast_to_float64(name):
    ours, _ = SOLVERS[name]
    A = np.diag([2, 4, 8])
    result = ours(A, np.array([2, 4, 8]), rtol=1e-12)
    assert result.x.dtype == np.float64
    np.testing.assert_allclose(result.x, np.ones(3))
    t = ours(torch.tensor(A), torch.tensor([2, 4, 8]), rtol=1e-12)
    assert t.x.dtype == torch.float64
    torch.testing.assert_close(t.x, torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("atol", [None, "legacy", -1.0, np.nan])
def test_invalid_atol_is_value_error(name, atol):
    ours, _ = SOLVERS[name]
    with pytest.raises(ValueError, match="atol"):
        ours(np.eye(3), np.ones(3), atol=atol)


@pytest.mark.parametrize("name", SOLVERS)
def test_tol_keyword_points_to_rtol(name):
    ours, _ = SOLVERS[name]
    with pytest.raises(TypeError, match="rtol"):
        ours(np.eye(3), np.ones(3), tol=1e-8)
    with pytest.raises(TypeError, match="tolerance"):
        ours(np.eye(3), np.ones(3), tolerance=1e-8)


def test_cg_info_on_failure_is_scipys():
    A, b = _spd(30, seed=3)
    _, info_ref = sla.cg(A, b, rtol=1e-14, maxiter=3)
    result = cg(np.stack([A, A]), np.stack([b, np.zeros(30)]), rtol=1e-14, maxiter=3)
    assert info_ref == 3
    np.testing.assert_array_equal(result.info, [info_ref, 0])
    assert result.sample(0).status == SolverStatus.MAX_ITERATIONS


# ---------------------------------------------------------------------------
# eigsh: (w, v), or w alone
# ---------------------------------------------------------------------------


def test_eigsh_unpacks_as_scipy():
    A = np.diag(np.arange(1.0, 31.0))
    v0 = np.ones(30)
    result = eigsh(A, 3, which="LA", v0=v0)
    w, v = result
    w_ref, v_ref = sla.eigsh(A, 3, which="LA", v0=v0)
    np.testing.assert_allclose(w, w_ref, rtol=1e-12)
    assert result[0] is result.eigenvalues and result[1] is result.eigenvectors
    assert len(result) == 2 and v.shape == v_ref.shape == (30, 3)
    np.testing.assert_allclose(np.abs(np.sum(v * v_ref, axis=0)), 1.0, rtol=1e-10)
    values = eigsh(A, 3, which="LA", v0=v0, return_eigenvectors=False)
    w_only = sla.eigsh(A, 3, which="LA", v0=v0, return_eigenvectors=False)
    assert len(values) == 3
    np.testing.assert_allclose(np.asarray(values), np.sort(w_only), rtol=1e-12)
    assert values[0] == values.eigenvalues[0] and values[-1] == pytest.approx(30.0)


@pytest.mark.parametrize("vectors", [True, False])
def test_eigsh_sample_is_the_problem_alone(vectors):
    A = np.stack([np.diag(np.arange(1.0, 21.0)), np.diag(np.arange(2.0, 42.0, 2.0))])
    v0 = np.ones((2, 20))
    batch = eigsh(A, 2, which="LA", v0=v0, return_eigenvectors=vectors)
    assert batch.batch_size == 2
    for i in range(2):
        alone = eigsh(A[i], 2, which="LA", v0=v0[i], return_eigenvectors=vectors)
        one = batch.sample(i)
        assert one.batch_size == 1 and one.matvecs == alone.matvecs
        np.testing.assert_allclose(one.eigenvalues, alone.eigenvalues, rtol=1e-12)
        assert (one.eigenvectors is None) == (not vectors)


@pytest.mark.parametrize("module", ["krylovadv.cg", "krylovadv.minres", "krylovadv.lanczos"])
def test_docstring_examples_run(module):
    """The Examples sections (scipy-style unpacking) are executed, not just shown."""
    import doctest
    import importlib

    failed, attempted = doctest.testmod(importlib.import_module(module), verbose=False)
    assert attempted > 0 and failed == 0
