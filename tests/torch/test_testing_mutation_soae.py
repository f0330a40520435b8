"""SOAE (Qian et al., Algorithm 1) against closed-form references, per sample, in float64.

Written to kill the mutants of ``krylovadv/torch/attacks/soae.py`` that the
behavioural tests let survive (``python tools/run_mutation.py torch/attacks/soae``;
the equivalent ones are listed in docs/dev/mutation-reports/torch-soae.md).

The main "model" is linear, :math:`z = Wx + b`, under cross-entropy, whose
gradient :math:`g = W^T(p - e_y)` and input Hessian
:math:`H = W^T(\\operatorname{diag} p - pp^T)W` are known in closed form.  The
reference solves lines 4-17 of Algorithm 1 one sample at a time with numpy: the
Krylov space :math:`\\mathcal K_m(H, r_0)`, :math:`r_0 = g - Hg`, and the
minimal-residual correction :math:`e` by least squares, so that
:math:`\\tilde\\delta = g + e`, its residual, its cosine with :math:`g` and the
step of line 18 (or its normalised form) are computed without the library.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from attack_fixtures import D, K, linear_model, one_cpu_thread
from attack_fixtures import linear_batch as batch
from torch import nn

from krylovadv import SolverStatus
from krylovadv.torch.attacks import SOAE
from krylovadv.torch.attacks.soae import SOLVERS, STEP_MODES
from krylovadv.torch.hessian import InputHessian


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


def closed_form(model: nn.Module, x: np.ndarray, y: int):
    """Cross-entropy loss, gradient and input Hessian of one sample of the linear model."""
    W = model.weight.detach().numpy()
    b = model.bias.detach().numpy()
    z = W @ x + b
    p = np.exp(z - z.max())
    p /= p.sum()
    e = np.zeros(K)
    e[y] = 1.0
    return -np.log(p[y]), W.T @ (p - e), W.T @ (np.diag(p) - np.outer(p, p)) @ W


def ref_solve(H: np.ndarray, g: np.ndarray, m: int):
    """Lines 4-17 with the Krylov dimension m: delta = g + argmin_{e in K_m} ||r0 - H e||."""
    r0 = g - H @ g
    basis = [r0]
    for _ in range(m - 1):
        basis.append(H @ basis[-1])
    V = np.stack(basis, axis=1)
    c = np.linalg.lstsq(H @ V, r0, rcond=None)[0]
    e = V @ c
    delta = g + e
    residual = np.linalg.norm(r0 - H @ e) / np.linalg.norm(g)
    ascent = g @ delta / (np.linalg.norm(g) * np.linalg.norm(delta))
    return delta, residual, ascent


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("shift", [0.0, 1.0])  # 1.0: `shift == 1` would pass H unshifted
def test_capped_solve_matches_the_per_sample_reference(solver, m, shift):
    model = linear_model()
    x, y = batch()
    found = SOAE(model, eps=0.1, tau=1e-12, max_krylov_dim=m, shift=shift, solver=solver).solve(
        x, y
    )
    for i in range(3):
        loss, g, H = closed_form(model, x[i].numpy(), int(y[i]))
        delta, residual, ascent = ref_solve(H + shift * np.eye(D), g, m)
        np.testing.assert_allclose(found.delta[i].numpy(), delta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(found.gradient[i].numpy(), g, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(float(found.loss[i]), loss, rtol=1e-12)
        np.testing.assert_allclose(found.residual[i], residual, rtol=1e-7)
        np.testing.assert_allclose(found.ascent[i], ascent, rtol=1e-10)
    assert found.residual.min() > 1e-6  # the cap stops GMRES short of the solution
    np.testing.assert_array_equal(found.krylov_dim, m)
    np.testing.assert_array_equal(found.krylov.status, SolverStatus.MAX_ITERATIONS)
    assert found.krylov is found.gmres
    np.testing.assert_array_equal(found.hvps, m + 2)  # Hg, m products, the true residual
    assert not found.fallback.any() and found.fd_step_rounding is None


def test_residual_of_a_small_gradient():
    """||g|| < 1: the residual is still ||r_0 - H e|| / ||g||, not a clipped 0."""
    model = linear_model()
    with torch.no_grad():
        model.weight.mul_(0.1)
    x, y = batch()
    found = SOAE(model, eps=0.1, tau=1e-12, max_krylov_dim=1).solve(x, y)
    for i in range(3):
        _, g, H = closed_form(model, x[i].numpy(), int(y[i]))
        assert np.linalg.norm(g) < 1
        np.testing.assert_allclose(found.residual[i], ref_solve(H, g, 1)[1], rtol=1e-7)
    assert found.residual.min() > 1e-6


@pytest.mark.parametrize("solver", SOLVERS)
def test_tau_stops_the_krylov_dimension(solver):
    """With the rank K - 1 Hessian the exact solution is reached in at most K - 1 steps;
    a loose tau stops earlier, at the first m whose reference residual is below it."""
    model = linear_model()
    x, y = batch()
    for tau in (1e-12, 0.3):
        found = SOAE(model, eps=0.1, tau=tau, max_krylov_dim=D, solver=solver).solve(x, y)
        for i in range(3):
            _, g, H = closed_form(model, x[i].numpy(), int(y[i]))
            beta = np.linalg.norm(g - H @ g)
            m = next(
                k for k in range(1, D + 1) if ref_solve(H, g, k)[1] * np.linalg.norm(g) < tau * beta
            )
            assert found.krylov_dim[i] == m
            np.testing.assert_allclose(
                found.delta[i].numpy(), ref_solve(H, g, m)[0], rtol=1e-7, atol=1e-10
            )
        np.testing.assert_array_equal(found.krylov.status, SolverStatus.CONVERGED)
        assert (found.krylov_dim < K).all()


def zero_and_tie_problem():
    """Identity model, quadratic loss 1/2 z^T A z + c^T z with A = diag(1, -1):

    sample 0 has g = 0 (c = -A x_0); sample 1 has g = (a, -a), H^{-1} g = (a, a), so
    g^T delta = 0 exactly; sample 2 is an ascent direction."""
    A = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    x = torch.tensor([[0.25, 0.75], [0.5, 0.5], [0.75, 0.5]], dtype=torch.float64)
    c = -(A @ x[0])

    def loss(z, y):
        return 0.5 * ((z @ A) * z).sum(dim=1) + z @ c

    return nn.Flatten(), loss, x, torch.zeros(3, dtype=torch.int64), A, c


def test_zero_gradient_and_orthogonal_directions():
    model, loss, x, y, A, c = zero_and_tie_problem()
    g = x @ A + c
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 / 0 for the zero gradient must not warn
        found = SOAE(model, eps=0.1, loss=loss, tau=1e-12).solve(x, y)
    # Sample 0: g = 0, so r_0 = 0 and delta = 0; no fallback, residual 0, cosine 0.
    assert torch.equal(found.delta[0], torch.zeros(2, dtype=torch.float64))
    assert found.residual[0] == 0.0 and found.ascent[0] == 0.0 and not found.fallback[0]
    # Sample 1: g^T delta = 0 is no ascent: the gradient replaces delta.
    assert found.fallback[1] and found.ascent[1] == 0.0
    torch.testing.assert_close(found.delta[1], g[1], rtol=0, atol=0)
    # Sample 2: delta = H^{-1} g = x_2 - x_0 (an exact solve), cos > 0.
    expected = (x[2] - x[0]).numpy()
    np.testing.assert_allclose(found.delta[2].numpy(), expected, atol=1e-14)
    cos = g[2].numpy() @ expected / np.linalg.norm(g[2]) / np.linalg.norm(expected)
    np.testing.assert_allclose(found.ascent[2], cos, rtol=1e-12)
    assert not found.fallback[2] and found.residual[2] < 1e-14
    kept = SOAE(model, eps=0.1, loss=loss, tau=1e-12, fallback="none").solve(x, y)
    assert not kept.fallback.any()
    np.testing.assert_allclose(kept.delta[1].numpy(), [0.25, -0.25], atol=1e-14)


def test_a_non_finite_product_falls_back_for_that_sample_only():
    """Loss sum_i z_i^{3/2}: its Hessian is infinite where a coordinate is 0."""
    x = torch.tensor([[0.0, 0.5, 0.3], [0.2, 0.5, 0.3], [0.4, 0.6, 0.9]], dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.int64)

    def loss(z, y):
        return (z.clamp_min(0) ** 1.5).sum(dim=1)

    found = SOAE(nn.Flatten(), eps=0.1, loss=loss, tau=1e-12, max_krylov_dim=3).solve(x, y)
    np.testing.assert_array_equal(found.fallback, [True, False, False])
    assert np.isnan(found.residual[0]) and np.isfinite(found.residual[1:]).all()
    g = 1.5 * x.sqrt()
    torch.testing.assert_close(found.delta[0], g[0])
    for i in (1, 2):  # diagonal H: delta = H^{-1} g = (1.5 sqrt z) / (0.75 / sqrt z) = 2 z
        np.testing.assert_allclose(found.delta[i].numpy(), 2 * x[i].numpy(), rtol=1e-10)


def test_an_infinite_gradient_breaks_that_sample_only():
    """Loss sum_i sqrt(z_i): the gradient is infinite at a zero coordinate; elsewhere
    delta = H^{-1} g = (1 / (2 sqrt z)) / (-1 / (4 z^{3/2})) = -2 z."""
    x = torch.tensor([[0.0, 0.5, 0.3], [0.2, 0.5, 0.3], [0.4, 0.6, 0.9]], dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.int64)

    def loss(z, y):
        return z.clamp_min(0).sqrt().sum(dim=1)

    found = SOAE(
        nn.Flatten(), eps=0.1, loss=loss, tau=1e-12, max_krylov_dim=3, fallback="none"
    ).solve(x, y)
    np.testing.assert_array_equal(found.fallback, [True, False, False])
    assert np.isnan(found.residual[0]) and np.isfinite(found.residual[1:]).all()
    for i in (1, 2):
        np.testing.assert_allclose(found.delta[i].numpy(), -2 * x[i].numpy(), rtol=1e-10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_product_that_turns_non_finite_inside_the_solve_falls_back(solver):
    """r_0 and the returned correction stay finite, but the solver met a NaN product.

    A NaN injected into sample 0's Krylov products (never into the product A g that
    gives r_0) is reported by the solver as NON_FINITE while the iterate it returns is
    still finite: only that status tells the attack that the direction is not a
    Newton direction, so sample 0 must fall back to g and the others must not move.
    """
    model = linear_model()
    x, y = batch()

    class NaNInKrylovProducts(SOAE):
        def hessian(self, x, y):
            H = super().hessian(x, y)
            clean, calls = H._matvec, []

            def product(v, indices):
                out = clean(v, indices)
                calls.append(1)
                if len(calls) > 1:  # the first call is A g (line 4)
                    rows = torch.arange(v.shape[0]) if indices is None else torch.as_tensor(indices)
                    out = torch.where((rows == 0)[:, None], torch.nan, out)
                return out

            H._matvec = product
            return H

    clean = SOAE(model, eps=0.1, tau=1e-12, max_krylov_dim=3, solver=solver).solve(x, y)
    found = NaNInKrylovProducts(model, eps=0.1, tau=1e-12, max_krylov_dim=3, solver=solver)
    found = found.solve(x, y)
    assert found.gmres.status[0] == SolverStatus.NON_FINITE
    assert torch.isfinite(found.gmres.x).all()  # only the status reveals the NaN
    np.testing.assert_array_equal(found.fallback, [True, False, False])
    assert np.isnan(found.residual[0]) and np.isfinite(found.residual[1:]).all()
    torch.testing.assert_close(found.delta[0], found.gradient[0], rtol=0, atol=0)
    torch.testing.assert_close(found.delta[1:], clean.delta[1:], rtol=1e-12, atol=1e-14)


def ref_attack(model, x, y, *, eps, alpha, steps, norm, raw=False, m=2):
    """Algorithm 1 with line 18 (raw) or the norm's unit step, per sample, in numpy."""
    out = []
    for i in range(x.shape[0]):
        x0 = x[i].numpy()
        xa = x0.copy()
        for _ in range(steps):
            _, g, H = closed_form(model, xa, int(y[i]))
            delta = ref_solve(H, g, m)[0]
            if g @ delta <= 0:
                delta = g
            if raw:
                step = alpha * delta
            elif norm == "linf":
                step = alpha * np.sign(delta)
            else:
                step = alpha * delta / np.linalg.norm(delta)
            xa = np.clip(xa + step, 0.0, 1.0)
            if norm == "linf":
                xa = np.clip(x0 + np.clip(xa - x0, -eps, eps), 0.0, 1.0)
            else:
                r = xa - x0
                xa = np.clip(x0 + r * min(1.0, eps / np.linalg.norm(r)), 0.0, 1.0)
        out.append(xa)
    return np.stack(out)


@pytest.mark.parametrize(
    "norm, raw, eps, alpha",
    [("linf", False, 0.05, 0.02), ("l2", False, 0.3, 0.2), ("linf", True, 0.5, 0.4)],
)
def test_attack_matches_the_reference_and_a_per_sample_loop(norm, raw, eps, alpha):
    model = linear_model(2)
    x, y = batch(4, seed=3)
    x[0, 0], x[1, 1] = 0.999, 0.001  # samples at the box's faces
    attack = SOAE(
        model,
        eps=eps,
        norm=norm,
        alpha=alpha,
        steps=3,
        tau=1e-12,
        max_krylov_dim=2,
        step_mode="raw" if raw else "norm",
    )
    x_adv = attack(x, y)
    expected = ref_attack(model, x, y, eps=eps, alpha=alpha, steps=3, norm=norm, raw=raw)
    np.testing.assert_allclose(x_adv.numpy(), expected, rtol=0, atol=1e-10)
    for i in range(4):
        torch.testing.assert_close(attack(x[i : i + 1], y[i : i + 1])[0], x_adv[i])


def test_raw_step_is_clipped_to_the_box():
    model = linear_model()
    x, y = batch()
    found = SOAE(model, eps=1.0, tau=1e-12).solve(x, y)
    attack = SOAE(model, eps=1.0, steps=1, alpha=50.0, tau=1e-12, step_mode="raw")
    x_adv = attack(x, y)
    expected = (x + 50.0 * found.delta).clamp(0.0, 1.0)
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-12)
    assert (x_adv == 0).any() and (x_adv == 1).any()


def test_raw_update_is_line_18_in_the_box():
    """The update alone (before the projection) is clip(x + alpha delta, 0, 1)."""
    x = torch.tensor([[0.2, 0.5, 0.9]], dtype=torch.float64)
    d = torch.tensor([[-1.0, 0.5, 1.5]], dtype=torch.float64)
    raw = SOAE(linear_model(), eps=1.0, alpha=0.4, step_mode="raw")
    expected = torch.tensor([[0.0, 0.7, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(raw.update(x, d, None), expected, rtol=0, atol=1e-15)
    big = torch.tensor([[-10.0, 0.5, 10.0]], dtype=torch.float64)
    torch.testing.assert_close(
        raw.update(x, big, None), torch.tensor([[0.0, 0.7, 1.0]], dtype=torch.float64)
    )


class CountingSOAE(SOAE):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gradients = 0

    def loss_and_gradient(self, x, y):
        self.gradients += 1
        return super().loss_and_gradient(x, y)


def test_run_records_the_solve_and_reuses_its_gradient():
    model = linear_model()
    x, y = batch()
    attack = CountingSOAE(model, eps=0.1, steps=2, tau=1e-12, max_krylov_dim=2)
    result = attack.run(x, y)
    # The trace's loss and gradient at x^0, x^1 come from the Hessian operator: only the
    # returned point costs a separate gradient.
    assert attack.gradients == 1
    found = attack.solve(x, y)
    d = result.diagnostics
    assert set(d) == {"krylov_dim", "gmres_status", "residual", "ascent", "fallback", "hvps"}
    np.testing.assert_array_equal(d["krylov_dim"][0], found.krylov_dim)
    np.testing.assert_array_equal(d["gmres_status"][0], SolverStatus.MAX_ITERATIONS)
    np.testing.assert_allclose(d["residual"][0], found.residual, rtol=1e-12)
    np.testing.assert_allclose(d["ascent"][0], found.ascent, rtol=1e-12)
    np.testing.assert_array_equal(d["fallback"][0], 0.0)
    np.testing.assert_array_equal(d["hvps"][0], 4.0)
    for i in range(3):
        loss, g, _ = closed_form(model, x[i].numpy(), int(y[i]))
        np.testing.assert_allclose(result.trace.loss[0, i], loss, rtol=1e-12)
        np.testing.assert_allclose(result.trace.grad_norm[0, i], np.linalg.norm(g), rtol=1e-12)


def test_finite_differences_pass_eta_and_report_rounding():
    model = linear_model()
    x, y = batch()
    for eta in (1e-13, 1e-4):
        attack = SOAE(model, eps=0.1, steps=1, hvp="fd-forward", eta=eta, max_krylov_dim=2)
        found = attack.solve(x, y)
        H = InputHessian(model, x, y, method="fd-forward", eta=eta)
        H.matvec(H.gradient)
        np.testing.assert_array_equal(found.fd_step_rounding, H.step_rounding)
        result = attack.run(x, y)
        np.testing.assert_array_equal(result.diagnostics["fd_step_rounding"][0], H.step_rounding)
    assert (
        found.fd_step_rounding.max()
        < 1e-6
        < SOAE(model, eps=0.1, hvp="fd-forward", eta=1e-13).solve(x, y).fd_step_rounding.min()
    )


def test_loss_and_kappa_reach_the_hessian():
    """CW on a linear model: H = 0; the gradient is zero where the margin saturates."""
    model = linear_model()
    x, _ = batch()
    z = model(x).detach()
    y = z.argmin(dim=1)  # misclassified: the margin max_{j != y} z_j - z_y is positive
    margin = (
        z.masked_fill(nn.functional.one_hot(y, K).bool(), -np.inf).amax(1) - z[torch.arange(3), y]
    )
    assert float(margin.min()) > 0.1
    flat = SOAE(model, eps=0.1, loss="cw", kappa=0.1).solve(x, y)  # every sample saturates
    torch.testing.assert_close(flat.gradient, torch.zeros_like(x))
    np.testing.assert_allclose(flat.loss.numpy(), 0.1)
    steep = SOAE(model, eps=0.1, loss="cw", kappa=float(margin.max()) + 1.0).solve(x, y)
    W = model.weight.detach()
    for i in range(3):
        j = int(z[i].masked_fill(torch.arange(K) == y[i], -np.inf).argmax())
        torch.testing.assert_close(steep.gradient[i], W[j] - W[y[i]])


def test_defaults_are_the_documented_ones():
    a = SOAE(linear_model(), eps=0.2)
    assert (a.norm.name, a.steps, a.loss, a.kappa, a.tau, a.max_krylov_dim) == (
        "linf",
        10,
        "ce",
        50.0,
        1e-3,
        20,
    )
    assert (a.shift, a.solver, a.hvp, a.eta, a.step_mode, a.fallback) == (
        0.0,
        "gmres",
        "exact",
        None,
        "norm",
        "gradient",
    )
    assert (a.random_start, a.restarts, a.early_stop, a.seed) == (False, 1, False, 0)
    assert a.alpha == pytest.approx(2.5 * 0.2 / 10)
    b = SOAE(
        linear_model(),
        eps=0.5,
        norm="l2",
        steps=3,
        alpha=0.1,
        loss="cw",
        kappa=2.0,
        tau=0.1,
        max_krylov_dim=5,
        shift=0.25,
        solver="minres",
        hvp="fd-central",
        eta=1e-3,
        step_mode="raw",
        fallback="none",
        random_start=True,
        restarts=2,
        early_stop=True,
        seed=7,
    )
    assert (b.norm.name, b.eps, b.steps, b.alpha, b.loss, b.kappa) == (
        "l2",
        0.5,
        3,
        0.1,
        "cw",
        2.0,
    )
    assert (b.tau, b.max_krylov_dim, b.shift, b.solver, b.hvp, b.eta) == (
        0.1,
        5,
        0.25,
        "minres",
        "fd-central",
        1e-3,
    )
    assert (b.step_mode, b.fallback, b.random_start, b.restarts, b.early_stop, b.seed) == (
        "raw",
        "none",
        True,
        2,
        True,
        7,
    )
    assert STEP_MODES == ("norm", "raw") and SOLVERS == ("gmres", "minres")
    assert repr(b) == (
        "SOAE(norm='l2', eps=0.5, steps=3, alpha=0.1, loss='cw', random_start=True, "
        "restarts=2, tau=0.1, max_krylov_dim=5, shift=0.25, solver='minres', "
        "hvp='fd-central', step_mode='raw')"
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tau": 0.0}, "tau must be"),
        ({"max_krylov_dim": 0}, "max_krylov_dim must be"),
        ({"shift": -1.0}, "shift must be"),
        ({"solver": "cg"}, "solver must be one of"),
        ({"hvp": "bfgs"}, "hvp must be one of"),
        ({"eta": 1e-3}, "eta is the finite-difference step; pass hvp="),
        ({"hvp": "fd-forward", "eta": -1.0}, "eta must be"),
        ({"step_mode": "newton"}, "step_mode must be one of"),
        ({"fallback": "pgd"}, "fallback must be one of"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SOAE(linear_model(), eps=0.1, **kwargs)
