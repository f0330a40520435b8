"""Verification tests for krylovadv.FiniteDifferenceHVP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import NONSINGULAR, build_quadratic, quadratics, seeds

from krylovadv import FiniteDifferenceHVP, SolverStatus, gmres

#: Worst relative error of H v on a quadratic with the default step.
QUADRATIC_BOUND = {
    ("forward", np.float64): 1e-6,
    ("central", np.float64): 1e-9,
    ("forward", np.float32): 1e-2,
    ("central", np.float32): 1e-3,
}


# A smooth non-quadratic function with a known Hessian:
#   f(x) = sum log cosh(x_i) + 1/4 sum x_i^4 + 1/2 x^T C x.
def smooth_problem(seed: int, n: int):
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((n, n)) / np.sqrt(n)
    C = (C + C.T) / 2

    def grad(x):
        return np.tanh(x) + x**3 + x @ C.T

    def hessian(x):
        return np.diag(1.0 / np.cosh(x) ** 2 + 3.0 * x**2) + C

    x = rng.uniform(-1.0, 1.0, n)
    v = rng.standard_normal(n)
    return grad, hessian, x, v / np.linalg.norm(v)  # unit v: the step t is eta


def relative_error(hv, exact) -> float:
    return float(np.linalg.norm(np.asarray(hv, dtype=np.float64) - exact) / np.linalg.norm(exact))


@given(
    q=quadratics(NONSINGULAR, dtypes=(np.float64, np.float32), max_n=30),
    scheme=st.sampled_from(("forward", "central")),
    seed=seeds,
)
def test_exact_on_quadratics(q, scheme, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(q.n).astype(q.dtype)
    v = rng.standard_normal(q.n).astype(q.dtype)
    op = FiniteDifferenceHVP(q.affine, x, scheme=scheme)  # Jacobian A, any family
    hv = op @ v
    assert hv.dtype == q.dtype and hv.shape == (q.n,)
    A = q.A.astype(np.float64)
    exact = A @ v.astype(np.float64)
    err = relative_error(hv, exact)
    # Rounding of the two gradient evaluations divided by the step.
    eps = np.finfo(q.dtype).eps
    g_scale = 2 * np.linalg.norm(A, 2) * np.linalg.norm(x) + np.linalg.norm(q.b.astype(np.float64))
    predicted = eps * g_scale * np.linalg.norm(v) / (op.step[0] * np.linalg.norm(exact))
    assert err <= 4 * predicted, (err, predicted)
    if q.cond <= 10:
        assert err <= QUADRATIC_BOUND[scheme, q.dtype.type]
    # The default step is sqrt(eps) (forward) or cbrt(eps) (central) times 1 + ||x||.
    factor = np.sqrt(eps) if scheme == "forward" else np.cbrt(eps)
    t = factor * (1 + np.linalg.norm(x.astype(np.float64)))
    assert op.step[0] == pytest.approx(t, rel=1e-3)


@pytest.mark.parametrize("scheme", ["forward", "central"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_to_dense_of_quadratic_is_A(scheme, dtype):
    q = build_quadratic("spd", 12, 3, dtype)
    x = np.linspace(-1.0, 1.0, 12).astype(dtype)
    op = FiniteDifferenceHVP(q.affine, x, scheme=scheme)  # Jacobian A, any family
    H = op.to_dense(like=x)
    assert H.dtype == dtype and H.shape == (12, 12)
    A = q.A.astype(np.float64)
    err = np.linalg.norm(H.astype(np.float64) - A, 2) / np.linalg.norm(A, 2)
    assert err <= QUADRATIC_BOUND[scheme, dtype]


@given(n=st.integers(2, 20), seed=seeds)
def test_forward_error_is_first_order(n, seed):
    grad, hessian, x, v = smooth_problem(seed, n)
    exact = hessian(x) @ v
    for eta in (1e-2, 1e-3, 1e-4):
        coarse = relative_error(FiniteDifferenceHVP(grad, x, eta=eta) @ v, exact)
        fine = relative_error(FiniteDifferenceHVP(grad, x, eta=eta / 4) @ v, exact)
        assert 4 / 1.5 <= coarse / fine <= 4 * 1.5, (eta, coarse, fine)


@given(n=st.integers(2, 20), seed=seeds)
def test_central_error_is_second_order(n, seed):
    grad, hessian, x, v = smooth_problem(seed, n)
    exact = hessian(x) @ v
    for eta in (1e-2, 1e-3):
        coarse = relative_error(FiniteDifferenceHVP(grad, x, eta=eta, scheme="central") @ v, exact)
        fine = relative_error(
            FiniteDifferenceHVP(grad, x, eta=eta / 4, scheme="central") @ v, exact
        )
        assert 16 / 1.5 <= coarse / fine <= 16 * 1.5, (eta, coarse, fine)


@given(n=st.integers(2, 20), seed=seeds, scheme=st.sampled_from(("forward", "central")))
def test_estimate_error_tracks_the_truncation_error(n, seed, scheme):
    grad, hessian, x, v = smooth_problem(seed, n)
    exact = hessian(x) @ v
    etas = (1e-2, 1e-3, 1e-4) if scheme == "forward" else (1e-2, 1e-3)
    for eta in etas:
        op = FiniteDifferenceHVP(grad, x, eta=eta, scheme=scheme)
        true = relative_error(op @ v, exact)
        estimate = op.estimate_error(v)
        assert estimate.shape == (1,)
        assert op.error_estimate is estimate
        assert true / 3 <= estimate[0] <= 3 * true, (eta, estimate, true)


def test_estimate_error_with_random_direction_is_seeded():
    grad, _, x, _ = smooth_problem(0, 6)
    op = FiniteDifferenceHVP(grad, x, eta=1e-3)
    first = op.estimate_error(seed=5)
    again = op.estimate_error(seed=5)
    assert np.array_equal(first, again)
    assert 0 < first[0] < 1e-1


@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_zero_vector_gives_exact_zero(scheme):
    q = build_quadratic("spd", 5, 0)
    op = FiniteDifferenceHVP(q.gradient, np.ones(5), scheme=scheme)
    assert np.array_equal(op @ np.zeros(5), np.zeros(5))
    batch = FiniteDifferenceHVP(q.gradient, np.ones((3, 5)), scheme=scheme)
    V = np.ones((3, 5))
    V[1] = 0.0
    out = batch @ V
    assert np.array_equal(out[1], np.zeros(5))
    assert np.all(out[[0, 2]] != 0)


def batched_problem(seed: int, B: int, n: int):
    qs = [build_quadratic("spd", n, seed + i) for i in range(B)]
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    X = np.random.default_rng(seed).standard_normal((B, n))
    return qs, A, b, X


@given(
    seed=seeds,
    B=st.integers(2, 4),
    n=st.integers(2, 15),
    scheme=st.sampled_from(("forward", "central")),
)
def test_batched_equals_per_sample_operators(seed, B, n, scheme):
    qs, A, b, X = batched_problem(seed, B, n)

    def grad(P):
        return np.einsum("kij,kj->ki", A, P) + b

    op = FiniteDifferenceHVP(grad, X, scheme=scheme)
    assert op.batch_size == B
    V = np.random.default_rng(seed + 1).standard_normal((B, n))
    out = op @ V
    for i in range(B):
        single = FiniteDifferenceHVP(qs[i].gradient, X[i], scheme=scheme)
        expected = single @ V[i]
        assert np.linalg.norm(out[i] - expected) <= 1e-6 * np.linalg.norm(expected)
        assert op.step[i] == pytest.approx(single.step[0], rel=1e-12)


@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_pass_indices_evaluates_only_the_given_rows(scheme):
    _, A, b, X = batched_problem(1, 4, 6)
    seen = []

    def grad(P, idx):
        idx = np.asarray(idx)
        seen.append((idx.tolist(), P.shape))
        return np.einsum("kij,kj->ki", A[idx], P) + b[idx]

    op = FiniteDifferenceHVP(grad, X, scheme=scheme, pass_indices=True)
    seen.clear()
    evals_before = op.num_grad_evals
    V = np.random.default_rng(0).standard_normal((4, 6))
    idx = np.array([2, 0])
    out = op.matvec(V[idx], idx)
    assert out.shape == (2, 6)
    calls = 1 if scheme == "forward" else 2
    assert seen == [([2, 0], (2, 6))] * calls
    assert op.num_grad_evals - evals_before == 2 * calls
    # Per-sample bookkeeping: only the evaluated samples have a step so far.
    assert np.all(np.isfinite(op.step[idx])) and np.all(np.isfinite(op.step_rounding[idx]))
    assert np.all(np.isnan(op.step[[1, 3]]))
    full = op @ V
    np.testing.assert_allclose(out, full[idx], rtol=1e-12, atol=1e-12)


def test_without_pass_indices_the_full_batch_is_evaluated():
    _, A, b, X = batched_problem(2, 3, 5)
    shapes = []

    def grad(P):
        shapes.append(P.shape)
        return np.einsum("kij,kj->ki", A, P) + b

    op = FiniteDifferenceHVP(grad, X)
    shapes.clear()
    V = np.random.default_rng(0).standard_normal((3, 5))
    out = op.matvec(V[[1]], np.array([1]))
    assert shapes == [(3, 5)]
    np.testing.assert_allclose(out[0], (op @ V)[1], rtol=1e-12)


def test_step_rounding_is_recorded():
    q = build_quadratic("spd", 8, 2)
    x64 = np.full(8, 3.0)
    op = FiniteDifferenceHVP(q.gradient, x64)
    assert np.isnan(op.step_rounding).all()  # no product yet
    op @ np.arange(1.0, 9.0)
    assert np.isfinite(op.step_rounding).all()
    assert 0 <= op.step_rounding[0] <= 1e-6
    # float32, tiny step: a sizeable part of the perturbation rounds away, and it is
    # measured (x + t u) - x rather than assumed.
    x32 = np.full(8, 3.0, dtype=np.float32)
    A32 = q.A.astype(np.float32)
    op32 = FiniteDifferenceHVP(lambda z: A32 @ z, x32, eta=1e-6)
    v = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    op32 @ v
    assert op32.step_rounding[0] > 1e-3
    t_nominal = 1e-6 * float(np.linalg.norm(v.astype(np.float64)))
    assert op32.step[0] != pytest.approx(t_nominal, rel=1e-6)
    assert op32.step[0] == pytest.approx(t_nominal, rel=0.5)


def test_step_lost_entirely_gives_nan_row_and_gmres_reports_non_finite():
    x = np.full(4, 1e20)  # x + t u == x in float64 for this tiny eta
    op = FiniteDifferenceHVP(lambda z: 2.0 * z, x, eta=1e-10)
    hv = op @ np.ones(4)
    assert np.all(np.isnan(hv))
    result = gmres(op, np.ones(4))
    assert result.status == SolverStatus.NON_FINITE
    assert np.all(np.isfinite(result.x))


def test_grad_x_is_reused():
    q = build_quadratic("spd", 5, 1)
    x = np.ones(5)
    calls = []

    def grad(z):
        calls.append(1)
        return q.gradient(z)

    op = FiniteDifferenceHVP(grad, x, grad_x=q.gradient(x))
    assert op.num_grad_evals == 0 and calls == []
    op @ np.ones(5)
    assert len(calls) == 1 and op.num_grad_evals == 1
    op_default = FiniteDifferenceHVP(grad, x)  # computes grad(x) once up front
    assert op_default.num_grad_evals == 1
    with pytest.raises(ValueError):
        FiniteDifferenceHVP(grad, x, grad_x=np.ones(4))


def test_invalid_arguments():
    g = lambda z: z  # noqa: E731
    x = np.ones(3)
    with pytest.raises(ValueError):
        FiniteDifferenceHVP(g, x, scheme="backward")
    for eta in (0.0, -1e-3, np.nan, np.inf):
        with pytest.raises(ValueError):
            FiniteDifferenceHVP(g, x, eta=eta)
    with pytest.raises(ValueError):
        FiniteDifferenceHVP(g, np.array([1.0, np.nan, 0.0]))
    with pytest.raises(TypeError):
        FiniteDifferenceHVP(g, np.ones(3, dtype=np.int64))
    with pytest.raises(TypeError):
        FiniteDifferenceHVP(g, x, pass_indices=True)  # g takes one argument
    op = FiniteDifferenceHVP(g, np.ones((2, 3)))
    with pytest.raises(ValueError):
        op.estimate_error(np.ones((3, 3)))


@given(q=quadratics(("spd", "nonsymmetric", "nonnormal"), max_n=25), seed=seeds)
def test_gmres_on_fd_operator_solves_the_newton_system(q, seed):
    x = np.random.default_rng(seed).standard_normal(q.n)
    g = q.affine(x)  # Ax + b: its Jacobian is A, also for nonsymmetric A
    op = FiniteDifferenceHVP(q.affine, x, grad_x=g)
    # The FD operator is linear only up to its own error (~1e-8 relative here), so
    # ask for a residual above that.
    result = gmres(op, -g, rtol=1e-6, restart=q.n)
    assert result.status == SolverStatus.CONVERGED
    step = np.linalg.solve(q.A, -g)
    # Accurate to the solver and FD accuracy, amplified by cond(A).
    err = np.linalg.norm(result.x - step) / np.linalg.norm(step)
    assert err <= 2 * q.cond * (1e-6 + 1e-7)
    # The Newton step lands on the root of the affine gradient, up to the solver's
    # tolerance plus the FD error (<= 1e-7 relative) of the products.
    fd_error = 1e-7 * np.linalg.norm(q.A, 2) * np.linalg.norm(result.x)
    assert np.linalg.norm(q.affine(x + result.x)) <= 1.01e-6 * np.linalg.norm(g) + fd_error


def test_torch_backend_matches_numpy():
    q = build_quadratic("spd", 6, 4)
    At, bt = torch.from_numpy(q.A), torch.from_numpy(q.b)
    x = np.linspace(-1.0, 1.0, 6)
    v = np.arange(1.0, 7.0)
    ref = FiniteDifferenceHVP(q.gradient, x, scheme="central") @ v
    op = FiniteDifferenceHVP(lambda z: At @ z + bt, torch.from_numpy(x), scheme="central")
    out = op @ torch.from_numpy(v)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    # The backends evaluate the same gradient A z + b with different BLAS
    # kernels (numpy: OpenBLAS, torch: MKL), so each gradient component may
    # differ by the dot-product rounding bound gamma_n (|A| |z| + |b|) with
    # gamma_n = n eps (Higham, Thm 3.5).  The central quotient subtracts two
    # gradients and multiplies by ||v|| / (2 t): that scales the bound by
    # ||v|| / t.  A fixed rtol ignores this 1/t amplification.
    eps = np.finfo(np.float64).eps
    n = x.size
    t = float(op.step[0])
    z_abs = np.abs(x) + t
    gradient_bound = n * eps * (np.abs(q.A) @ z_abs + np.abs(q.b))
    atol = 2 * gradient_bound * np.linalg.norm(v) / (2 * t)
    assert np.all(np.abs(out.numpy() - ref) <= atol + 4 * eps * np.abs(ref))
    # ... and the bound is tight enough to matter: a product off by 1e-6 fails.
    assert np.all(atol < 1e-6 * np.abs(ref).max())
