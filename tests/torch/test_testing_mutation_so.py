"""S-O and its power-iteration variant (Li et al.) against closed-form references in float64.

Written to kill the mutants of ``krylovadv/torch/attacks/so.py`` that the
behavioural tests let survive (``python tools/run_mutation.py torch/attacks/so``;
the equivalent ones are listed in docs/dev/mutation-reports/torch-so.md).

The "model" is linear, :math:`z = Wx + b`, under cross-entropy: the gradient
:math:`g = W^T(p - e_y)` and the input Hessian
:math:`H = W^T(\\operatorname{diag} p - pp^T)W` are known in closed form, so the
noise-smoothed gradient (Li et al., eqs. 3-4, with the noise drawn from the
test's own seeded generator), the PGD steps along it, and one or many steps of
the power iteration (Li et al., appendix A) are computed per sample with numpy.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from attack_fixtures import D, linear_model, one_cpu_thread
from attack_fixtures import linear_batch as batch
from torch import nn

from krylovadv import SolverStatus
from krylovadv.torch.attacks import SO, SOPower, get_norm


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


def ce_grad(model: nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows g_b = W^T (softmax(W x_b + b) - e_{y_b})."""
    W = model.weight.detach().numpy()
    z = x @ W.T + model.bias.detach().numpy()
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p @ W


def ce_hessian(model: nn.Module, x: np.ndarray) -> np.ndarray:
    W = model.weight.detach().numpy()
    z = W @ x + model.bias.detach().numpy()
    p = np.exp(z - z.max())
    p /= p.sum()
    return W.T @ (np.diag(p) - np.outer(p, p)) @ W


# -- S-O: the Gaussian-smoothed gradient ------------------------------------------------------


def ref_smoothed(model, x, y, gen, samples, sigma):
    total = np.zeros(x.shape)
    for _ in range(samples):
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float64).numpy()
        total += ce_grad(model, x + sigma * noise, y)
    return total / samples


def test_smoothed_gradient_is_the_mean_over_seeded_noise():
    model = linear_model()
    x, y = batch()
    attack = SO(model, eps=0.1, samples=3, sigma=0.4, seed=5)
    expected = ref_smoothed(model, x.numpy(), y.numpy(), torch.Generator().manual_seed(5), 3, 0.4)
    np.testing.assert_allclose(attack.smoothed_gradient(x, y).numpy(), expected, rtol=1e-12)
    gen = torch.Generator().manual_seed(11)
    expected = ref_smoothed(model, x.numpy(), y.numpy(), torch.Generator().manual_seed(11), 3, 0.4)
    np.testing.assert_allclose(attack.smoothed_gradient(x, y, gen).numpy(), expected, rtol=1e-12)


def ref_so(model, x, y, *, eps, alpha, steps, norm, samples, sigma, seed, random_start):
    """Li et al.'s S-O on the whole batch, one generator for the run, in numpy."""
    gen = torch.Generator().manual_seed(seed)
    x0 = x.numpy()
    xa = get_norm(norm).random_start(x, eps, gen).numpy() if random_start else x0.copy()
    for _ in range(steps):
        g = ref_smoothed(model, xa, y.numpy(), gen, samples, sigma)
        if norm == "linf":
            xa = np.clip(xa + alpha * np.sign(g), 0, 1)
            xa = np.clip(x0 + np.clip(xa - x0, -eps, eps), 0, 1)
        else:
            xa = np.clip(xa + alpha * g / np.linalg.norm(g, axis=1, keepdims=True), 0, 1)
            r = xa - x0
            scale = np.minimum(1.0, eps / np.linalg.norm(r, axis=1, keepdims=True))
            xa = np.clip(x0 + r * scale, 0, 1)
    return xa


@pytest.mark.parametrize("norm, random_start", [("linf", False), ("l2", True)])
def test_so_run_matches_the_reference(norm, random_start):
    model = linear_model(1)
    x, y = batch(4, seed=2)
    eps, alpha = (0.05, 0.02) if norm == "linf" else (0.3, 0.15)
    attack = SO(
        model,
        eps=eps,
        norm=norm,
        alpha=alpha,
        steps=3,
        loss="ce",
        samples=2,
        sigma=0.5,
        seed=3,
        random_start=random_start,
    )
    expected = ref_so(
        model,
        x,
        y,
        eps=eps,
        alpha=alpha,
        steps=3,
        norm=norm,
        samples=2,
        sigma=0.5,
        seed=3,
        random_start=random_start,
    )
    np.testing.assert_allclose(attack(x, y).numpy(), expected, rtol=0, atol=1e-12)
    assert not attack.deterministic


def test_so_defaults_and_arguments():
    model = linear_model()
    for norm in ("linf", get_norm("linf")):
        a = SO(model, eps=1, norm=norm, steps=1)
        assert (a.alpha, a.loss, a.samples, a.sigma, a.kappa) == (0.1, "ce", 10, 0.7, 50.0)
    b = SO(model, eps=2, norm=get_norm("l2"), steps=1)
    assert (b.alpha, b.loss, b.steps) == (5.0, "cw", 1)
    assert (b.random_start, b.restarts, b.early_stop, b.seed) == (False, 1, False, 0)
    c = SO(
        model,
        eps=0.5,
        norm="l2",
        steps=4,
        alpha=0.01,
        loss="ce",
        kappa=3.0,
        samples=2,
        sigma=0.0,
        random_start=True,
        restarts=2,
        early_stop=True,
        seed=9,
    )
    assert (c.alpha, c.loss, c.kappa, c.samples, c.sigma) == (0.01, "ce", 3.0, 2, 0.0)
    assert (c.random_start, c.restarts, c.early_stop, c.seed, c.eps) == (True, 2, True, 9, 0.5)
    assert repr(c) == (
        "SO(norm='l2', eps=0.5, steps=4, alpha=0.01, loss='ce', random_start=True, "
        "restarts=2, samples=2, sigma=0)"
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"samples": 0}, ValueError, "samples must be"),
        ({"sigma": -0.1}, ValueError, "sigma must be"),
        ({"steps": 0, "norm": "l2"}, ValueError, "steps must be"),
        ({"steps": 1.5}, TypeError, "steps must be"),
        ({"eps": "big"}, TypeError, "eps must be"),
        ({"norm": "l1"}, ValueError, "^norm must be one of"),
    ],
)
def test_so_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        SO(linear_model(), **{"eps": 0.1, **kwargs})


# -- S-O, appendix A: the power iteration --------------------------------------------------------


def test_one_power_step_from_the_gradient_is_eq_3():
    """power_iters=1: r = H g / ||H g||, ascent-signed; eigenvalue = g^T H g / g^T g."""
    model = linear_model()
    x, y = batch()
    found = SOPower(model, eps=0.1, power_iters=1, start="gradient").eigenvector(x, y)
    g = ce_grad(model, x.numpy(), y.numpy())
    for i in range(3):
        H = ce_hessian(model, x[i].numpy())
        r = H @ g[i] / np.linalg.norm(H @ g[i])
        r *= np.sign(r @ g[i])
        np.testing.assert_allclose(found.direction[i].numpy(), r, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(found.power.eigenvalue[i], g[i] @ H @ g[i] / (g[i] @ g[i]))
    np.testing.assert_allclose(found.gradient.numpy(), g, rtol=1e-12)
    np.testing.assert_array_equal(found.power.iterations, 1)
    np.testing.assert_array_equal(found.power.status, SolverStatus.MAX_ITERATIONS)
    assert not found.fallback.any()


def test_random_start_is_seeded_and_converges_to_the_top_eigenvector():
    model = linear_model()
    x, y = batch()
    one = SOPower(model, eps=0.1, power_iters=1, seed=4)
    v0 = torch.randn((3, D), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    g = ce_grad(model, x.numpy(), y.numpy())
    for gen, start in ((None, v0), (torch.Generator().manual_seed(8), None)):
        if start is None:
            start = torch.randn(
                (3, D), generator=torch.Generator().manual_seed(8), dtype=torch.float64
            )
        found = one.eigenvector(x, y, gen)
        for i in range(3):
            H = ce_hessian(model, x[i].numpy())
            r = H @ start[i].numpy()
            r = r / np.linalg.norm(r) * np.sign(r @ g[i])
            np.testing.assert_allclose(found.direction[i].numpy(), r, rtol=1e-10, atol=1e-14)
    many = SOPower(model, eps=0.1, power_iters=500, tol=1e-9).eigenvector(x, y)
    np.testing.assert_array_equal(many.power.status, SolverStatus.CONVERGED)
    for i in range(3):
        w, V = np.linalg.eigh(ce_hessian(model, x[i].numpy()))
        top = V[:, -1] * np.sign(V[:, -1] @ g[i])
        np.testing.assert_allclose(many.direction[i].numpy(), top, atol=1e-6)
        np.testing.assert_allclose(many.power.eigenvalue[i], w[-1], rtol=1e-8)


def test_tol_sets_the_number_of_power_steps():
    """Stop at the first k with ||H d - lam d|| <= tol |lam| (lam = d^T H d, ||d|| = 1)."""
    model = linear_model()
    x, y = batch()
    g = ce_grad(model, x.numpy(), y.numpy())
    for tol in (0.3, 1e-4):
        found = SOPower(model, eps=0.1, power_iters=200, tol=tol, start="gradient").eigenvector(
            x, y
        )
        for i in range(3):
            H = ce_hessian(model, x[i].numpy())
            d = g[i] / np.linalg.norm(g[i])
            k = 0
            while True:
                k += 1
                w = H @ d
                lam = d @ w
                if np.linalg.norm(w - lam * d) <= tol * abs(lam):
                    break
                d = w / np.linalg.norm(w)
            assert found.power.iterations[i] == k < 200
            np.testing.assert_allclose(found.power.eigenvalue[i], lam, rtol=1e-10)


def selector_problem():
    """Identity model; loss 1/2 y z^T A z + c^T z: label 0 has H = 0 (the power iteration
    breaks down), label 1 has H = A; sample 2 has g = A x_2 + c = 0."""
    A = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]], dtype=torch.float64)
    x = torch.tensor([[0.2, 0.4, 0.6], [0.7, 0.1, 0.3], [0.5, 0.5, 0.5]], dtype=torch.float64)
    c = -(A @ x[2])

    def loss(z, y):
        return 0.5 * y.to(z.dtype) * ((z @ A) * z).sum(dim=1) + z @ c

    return nn.Flatten(), loss, x, torch.tensor([0, 1, 1]), A.numpy(), c.numpy()


def test_breakdown_falls_back_and_a_zero_gradient_starts_from_ones():
    model, loss, x, y, A, c = selector_problem()
    found = SOPower(model, eps=0.1, loss=loss, power_iters=1, start="gradient").eigenvector(x, y)
    np.testing.assert_array_equal(found.fallback, [True, False, False])
    np.testing.assert_array_equal(
        found.power.status,
        [SolverStatus.BREAKDOWN, SolverStatus.MAX_ITERATIONS, SolverStatus.MAX_ITERATIONS],
    )
    np.testing.assert_allclose(found.direction[0].numpy(), c, rtol=1e-14)  # g = c at H = 0
    g1 = A @ x[1].numpy() + c
    r1 = A @ g1
    np.testing.assert_allclose(found.direction[1].numpy(), r1 / np.linalg.norm(r1), rtol=1e-12)
    assert np.all(found.gradient[2].numpy() == 0)
    ones = A @ np.ones(3)  # g = 0: the start vector is all ones; g^T r = 0 keeps the sign
    np.testing.assert_allclose(found.direction[2].numpy(), ones / np.linalg.norm(ones), rtol=1e-12)


class CountingSOPower(SOPower):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gradients = 0

    def loss_and_gradient(self, x, y):
        self.gradients += 1
        return super().loss_and_gradient(x, y)


def test_run_records_the_power_iteration_and_reuses_its_gradient():
    model, loss, x, y, A, c = selector_problem()
    attack = CountingSOPower(model, eps=0.05, loss=loss, steps=2, power_iters=1, start="gradient")
    result = attack.run(x, y)
    assert attack.gradients == 1  # the returned point only; steps reuse the operator's
    found = attack.eigenvector(x, y)
    d = result.diagnostics
    assert set(d) == {"eigenvalue", "power_iterations", "power_status", "fallback"}
    np.testing.assert_allclose(d["eigenvalue"][0], found.power.eigenvalue, rtol=1e-12)
    np.testing.assert_array_equal(d["power_iterations"][0], 1.0)
    np.testing.assert_array_equal(d["power_status"][0], found.power.status)
    np.testing.assert_array_equal(d["fallback"], [[1.0, 0.0, 0.0]] * 2)
    g = x.numpy() @ A * y.numpy()[:, None] + c
    np.testing.assert_allclose(result.trace.grad_norm[0], np.linalg.norm(g, axis=1), rtol=1e-12)
    x1 = np.clip(x.numpy() + 0.005 * np.sign(found.direction.numpy()), 0, 1)
    loss1 = loss(torch.from_numpy(x1), y).numpy()
    np.testing.assert_allclose(result.trace.loss[1], loss1, rtol=1e-12)


def test_a_seeded_run_uses_one_generator_for_every_step():
    model = linear_model()
    x, y = batch()
    attack = SOPower(model, eps=0.2, steps=2, alpha=0.05, power_iters=1, seed=6)
    gen = torch.Generator().manual_seed(6)
    xa = x.numpy().copy()
    for _ in range(2):
        v0 = torch.randn((3, D), generator=gen, dtype=torch.float64).numpy()
        g = ce_grad(model, xa, y.numpy())
        r = np.stack([ce_hessian(model, xa[i]) @ v0[i] for i in range(3)])
        r *= np.sign((r * g).sum(1))[:, None]
        xa = np.clip(xa + 0.05 * np.sign(r), 0, 1)
    np.testing.assert_allclose(attack(x, y).numpy(), xa, rtol=0, atol=1e-12)


def test_hvp_eta_and_kappa_reach_the_hessian():
    """CW with a small kappa saturates (H = 0, breakdown) where a large one does not matter:
    the CW margin of a linear model has H = 0 either way, but the gradient differs."""
    model = linear_model()
    x, _ = batch()
    z = model(x).detach()
    y = z.argmin(dim=1)
    sat = SOPower(model, eps=0.1, loss="cw", kappa=0.01, start="gradient").eigenvector(x, y)
    torch.testing.assert_close(sat.gradient, torch.zeros_like(x))
    free = SOPower(model, eps=0.1, loss="cw", kappa=100.0, start="gradient").eigenvector(x, y)
    assert (free.gradient.abs().sum(1) > 0).all() and free.fallback.all()
    # Forward differences with a large step differ from the exact products by O(eta).
    exact = SOPower(model, eps=0.1, power_iters=1, start="gradient").eigenvector(x, y)
    coarse = SOPower(
        model, eps=0.1, power_iters=1, start="gradient", hvp="fd-forward", eta=0.5
    ).eigenvector(x, y)
    fine = SOPower(
        model, eps=0.1, power_iters=1, start="gradient", hvp="fd-central", eta=1e-4
    ).eigenvector(x, y)
    torch.testing.assert_close(fine.direction, exact.direction, rtol=1e-6, atol=1e-7)
    assert float((coarse.direction - exact.direction).abs().max()) > 1e-3


def test_sopower_defaults_and_arguments():
    model = linear_model()
    a = SOPower(model, eps=1, steps=5)
    assert (a.alpha, a.loss, a.power_iters, a.tol, a.hvp, a.eta, a.start) == (
        0.1,
        "ce",
        10,
        1e-3,
        "exact",
        None,
        "random",
    )
    assert a.stochastic_direction and not a.deterministic
    d = SOPower(model, eps=0.3)
    assert (d.steps, d.norm.name, d.kappa, d.random_start, d.restarts, d.early_stop) == (
        20,
        "linf",
        50.0,
        False,
        1,
        False,
    )
    assert d.seed == 0 and d.alpha == pytest.approx(0.03)
    b = SOPower(model, eps=2, norm="l2", steps=4)
    assert (b.alpha, b.loss, b.kappa, b.norm.name) == (1.25, "ce", 50.0, "l2")
    c = SOPower(
        model,
        eps=0.5,
        steps=3,
        alpha=0.2,
        loss="cw",
        kappa=2.0,
        power_iters=3,
        tol=0.1,
        hvp="fd-forward",
        eta=0.01,
        start="gradient",
        random_start=True,
        restarts=2,
        early_stop=True,
        seed=3,
    )
    assert (c.alpha, c.loss, c.kappa, c.power_iters, c.tol, c.hvp, c.eta, c.start) == (
        0.2,
        "cw",
        2.0,
        3,
        0.1,
        "fd-forward",
        0.01,
        "gradient",
    )
    assert (c.random_start, c.restarts, c.early_stop, c.seed) == (True, 2, True, 3)
    assert not SOPower(model, eps=0.1, start="gradient").stochastic_direction


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"power_iters": 0}, "power_iters must be"),
        ({"tol": 0.0}, "tol must be"),
        ({"hvp": "bfgs"}, "hvp must be one of"),
        (
            {"eta": 1e-3},
            "^"
            + re.escape(
                "eta is the finite-difference step; pass hvp='fd-forward' or "
                "'fd-central' with it (exact products need none)."
            )
            + "$",
        ),
        ({"hvp": "fd-central", "eta": 0.0}, "eta must be"),
        ({"start": "zeros"}, "start must be one of"),
    ],
)
def test_sopower_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SOPower(linear_model(), eps=0.1, **kwargs)


def test_an_infinite_gradient_falls_back_for_that_sample_only():
    """Loss sum_i sqrt(z_i): the gradient, hence the start vector, is infinite at a zero
    coordinate; H = diag(-1 / (4 z^{3/2})) elsewhere, whose top-|lambda| eigenvector is
    the coordinate with the smallest z."""
    x = torch.tensor([[0.0, 0.5, 0.3], [0.2, 0.5, 0.3], [0.4, 0.6, 0.9]], dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.int64)

    def loss(z, y):
        return z.clamp_min(0).sqrt().sum(dim=1)

    for start in ("gradient", "random"):
        found = SOPower(
            nn.Flatten(), eps=0.1, loss=loss, power_iters=300, tol=1e-8, start=start
        ).eigenvector(x, y)
        np.testing.assert_array_equal(found.fallback, [True, False, False])
        assert found.power.status[0] == SolverStatus.NON_FINITE
        for i in (1, 2):
            top = np.eye(3)[int(x[i].argmin())]
            np.testing.assert_allclose(np.abs(found.direction[i].numpy()), top, atol=1e-6)


def test_an_infinite_gradient_leaves_the_other_samples_start_from_their_gradient():
    """One power step (eq. 3) from g, for the finite samples of a batch in which one
    gradient is infinite: r = H g / ||H g|| with H = diag(-1 / (4 z^{3/2})) and
    g = 1 / (2 sqrt z), i.e. r ∝ 1 / z^2 after ascent-signing.  Starting every sample
    from the ones vector (as if the whole batch were unusable) would give r ∝ z^{-3/2}."""
    x = torch.tensor([[0.0, 0.5, 0.3], [0.2, 0.5, 0.3], [0.4, 0.6, 0.9]], dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.int64)

    def loss(z, y):
        return z.clamp_min(0).sqrt().sum(dim=1)

    attack = SOPower(nn.Flatten(), eps=0.1, loss=loss, power_iters=1, start="gradient")
    found = attack.eigenvector(x, y)
    np.testing.assert_array_equal(found.fallback, [True, False, False])
    for i in (1, 2):
        z = x[i].numpy()
        r = z**-2.0 / np.linalg.norm(z**-2.0)
        np.testing.assert_allclose(found.direction[i].numpy(), r, rtol=1e-10)
