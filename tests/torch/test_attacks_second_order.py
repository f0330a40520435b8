"""The second-order directions against explicitly built matrices.

SOAE's Krylov solve against ``numpy.linalg.solve`` (a loss with a known SPD or
indefinite Hessian, and dense input Hessians of tiny networks), the S-O power
variant against ``numpy.linalg.eigh``, and the S-O noise draws.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from attack_fixtures import (
    QuadraticLoss,
    one_cpu_thread,
    random_images,
    spd_matrix,
    test_digits,
    tiny_mlp,
    tiny_model,
    trained_cnn,
)
from torch import nn

from krylovadv import SolverStatus
from krylovadv.torch.attacks import PGD, SO, SOAE, SOPower
from krylovadv.torch.hessian import InputHessian


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


def cosine(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def quadratic_problem(d: int = 8, batch: int = 3, *, seed: int = 0):
    """Inputs x in [0.3, 0.7]^d, an identity model and the loss 1/2 x^T A x + c^T x."""
    A = spd_matrix(d, condition=10.0, seed=seed)
    c = np.random.default_rng(seed + 1).standard_normal(d)
    loss = QuadraticLoss(torch.from_numpy(A), torch.from_numpy(c))
    x = 0.3 + 0.4 * random_images((batch, d), seed=seed, dtype=torch.float64)
    y = torch.zeros(batch, dtype=torch.int64)
    g = x.numpy() @ A + c  # A is symmetric
    return nn.Flatten(), loss, x, y, A, g


# -- SOAE: H delta = g -----------------------------------------------------------------------


def test_soae_direction_solves_a_known_spd_system():
    model, loss, x, y, A, g = quadratic_problem()
    found = SOAE(model, eps=1.0, loss=loss, tau=1e-12, max_krylov_dim=8).solve(x, y)
    expected = np.linalg.solve(A, g.T).T
    assert np.all(cosine(found.delta, expected) > 0.999999)
    np.testing.assert_allclose(found.delta.numpy(), expected, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(found.gradient.numpy(), g, rtol=1e-12)
    assert np.all(found.krylov_dim <= 8) and not found.fallback.any()
    assert np.all(found.ascent > 0)  # g^T A^{-1} g > 0 for SPD A
    assert np.all(found.residual < 1e-8)
    np.testing.assert_array_equal(found.hvps, found.krylov_dim + 2)  # Hg, m, true residual


def test_soae_shift_solves_the_shifted_system():
    model, loss, x, y, A, g = quadratic_problem()
    found = SOAE(model, eps=1.0, loss=loss, tau=1e-12, max_krylov_dim=8, shift=0.5).solve(x, y)
    expected = np.linalg.solve(A + 0.5 * np.eye(8), g.T).T
    np.testing.assert_allclose(found.delta.numpy(), expected, rtol=1e-8, atol=1e-8)


def test_soae_finite_differences_of_a_linear_gradient_are_exact():
    model, loss, x, y, A, g = quadratic_problem()
    found = SOAE(
        model, eps=1.0, loss=loss, tau=1e-10, max_krylov_dim=8, hvp="fd-forward", eta=1e-3
    ).solve(x, y)
    assert np.all(cosine(found.delta, np.linalg.solve(A, g.T).T) > 0.999)


def test_soae_krylov_dimension_is_capped():
    model, loss, x, y, _, _ = quadratic_problem()
    found = SOAE(model, eps=1.0, loss=loss, tau=1e-14, max_krylov_dim=2).solve(x, y)
    np.testing.assert_array_equal(found.krylov_dim, 2)
    np.testing.assert_array_equal(found.gmres.status, SolverStatus.MAX_ITERATIONS)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_soae_first_step_follows_the_normalised_solution(norm):
    model, loss, x, y, A, g = quadratic_problem()
    delta = torch.from_numpy(np.linalg.solve(A, g.T).T)
    x_adv = SOAE(
        model, eps=1.0, norm=norm, loss=loss, steps=1, alpha=0.01, tau=1e-12, max_krylov_dim=8
    )(x, y)
    unit = delta.sign() if norm == "linf" else delta / delta.norm(dim=1, keepdim=True)
    torch.testing.assert_close(x_adv - x, 0.01 * unit, atol=1e-10, rtol=0)


def test_soae_raw_step_is_algorithm_1_line_18():
    model, loss, x, y, A, g = quadratic_problem()
    delta = torch.from_numpy(np.linalg.solve(A, g.T).T)
    x_adv = SOAE(
        model, eps=1.0, loss=loss, steps=1, alpha=1e-3, tau=1e-12, max_krylov_dim=8, step_mode="raw"
    )(x, y)
    torch.testing.assert_close(x_adv - x, 1e-3 * delta, atol=1e-10, rtol=0)


def test_soae_lost_finite_difference_steps_fall_back_to_the_gradient():
    """x + eta v == x in floating point: the products are NaN, the gradient is used."""
    model, loss, x, y, _, g = quadratic_problem()
    found = SOAE(model, eps=1.0, loss=loss, hvp="fd-forward", eta=1e-30).solve(x, y)
    assert found.fallback.all() and np.isnan(found.residual).all()
    np.testing.assert_allclose(found.delta.numpy(), g, rtol=1e-12)
    result = SOAE(model, eps=0.1, loss=loss, steps=2, hvp="fd-forward", eta=1e-30).run(x, y)
    assert result.num_fallbacks == 2 * 3


def test_soae_reports_finite_difference_rounding():
    model = trained_cnn()
    x, y = test_digits(8)
    lossy = SOAE(model, eps=0.1, steps=1, hvp="fd-forward", eta=1e-12).run(x, y)
    assert np.all(lossy.diagnostics["fd_step_rounding"] > 0.5)  # most of eta*g rounded away
    exact = SOAE(model, eps=0.1, steps=1).run(x, y)
    assert "fd_step_rounding" not in exact.diagnostics


def indefinite_problem():
    """H = diag(1, -1): sample 0 has g^T H^{-1} g < 0, sample 1 has it > 0."""
    A = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    loss = QuadraticLoss(A, torch.zeros(2, dtype=torch.float64))
    x = torch.tensor([[0.1, 0.9], [0.9, 0.1]], dtype=torch.float64)
    return nn.Flatten(), loss, x, torch.zeros(2, dtype=torch.int64)


def test_soae_non_ascent_directions_fall_back_to_the_gradient_and_are_counted():
    model, loss, x, y = indefinite_problem()
    g = x * torch.tensor([1.0, -1.0], dtype=torch.float64)
    kept = SOAE(model, eps=1.0, loss=loss, tau=1e-12, fallback="none").solve(x, y)
    np.testing.assert_allclose(kept.delta.numpy(), x.numpy(), atol=1e-12)  # H^{-1} g = x
    assert kept.ascent[0] < 0 < kept.ascent[1] and not kept.fallback.any()
    safe = SOAE(model, eps=1.0, loss=loss, tau=1e-12).solve(x, y)
    np.testing.assert_array_equal(safe.fallback, [True, False])
    torch.testing.assert_close(safe.delta[0], g[0])
    torch.testing.assert_close(safe.delta[1], kept.delta[1])
    result = SOAE(model, eps=0.05, loss=loss, steps=2).run(x, y)
    assert result.diagnostics["fallback"][0, 0] == 1 and result.diagnostics["fallback"][0, 1] == 0
    assert result.num_fallbacks >= 1


def test_soae_matches_dense_solve_on_a_smooth_network():
    model = tiny_mlp(6, 5, activation="tanh")
    x = random_images((4, 6), seed=1, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    H = InputHessian(model, x, y)
    dense, g = H.to_dense(), H.gradient.numpy()
    expected = np.stack([np.linalg.solve(dense[b], g[b]) for b in range(4)])
    found = SOAE(model, eps=0.1, tau=1e-13, max_krylov_dim=6, fallback="none").solve(x, y)
    assert np.all(cosine(found.delta, expected) > 0.999)


def test_soae_matches_minimum_norm_solution_on_a_relu_network():
    """A piecewise-linear net: H = J^T S J is PSD of rank <= K - 1 and g is in its range."""
    model = tiny_model(1, num_classes=10, dtype=torch.float64, seed=2)
    x = random_images((3, 1, 4, 4), seed=2, dtype=torch.float64)
    y = torch.tensor([3, 7, 1])
    H = InputHessian(model, x, y)
    dense, g = H.to_dense(), H.gradient.numpy()
    assert np.all(np.linalg.eigvalsh(dense) > -1e-10)  # PSD
    expected = np.stack([np.linalg.lstsq(dense[b], g[b], rcond=None)[0] for b in range(3)])
    found = SOAE(model, eps=0.1, tau=1e-10).solve(x, y)
    assert np.all(cosine(found.delta, expected) > 0.999)
    assert np.all(found.krylov_dim <= 9)  # at most rank(H) = K - 1 steps
    assert np.all(found.ascent > 0) and not found.fallback.any()  # +H^-1 g ascends


def test_soae_attacks_a_trained_cnn():
    model = trained_cnn()
    x, y = test_digits(40)
    result = SOAE(model, eps=0.1, steps=5).run(x, y)
    clean = (model(x).argmax(1) != y).float().mean()
    assert result.success.float().mean() > clean + 0.2
    assert result.num_fallbacks == 0  # ReLU + cross-entropy: H is PSD, +H^-1 g ascends
    assert np.nanmax(result.diagnostics["krylov_dim"]) <= 20


# -- S-O: the Gaussian-smoothed gradient -------------------------------------------------------


class RecordingSO(SO):
    """S-O that remembers every point where it took a gradient."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.points = []

    def loss_and_gradient(self, x, y):
        self.points.append(x.detach().clone())
        return super().loss_and_gradient(x, y)


def test_so_noise_samples_are_independent_draws():
    model = tiny_model(1)
    x, y = random_images((2, 1, 8, 8), seed=3), torch.tensor([1, 2])
    attack = RecordingSO(model, eps=0.3, steps=2, samples=4, sigma=0.5)
    attack(x, y)
    assert len(attack.points) == 8  # steps x samples gradients, nothing else
    first = [(p - x) / 0.5 for p in attack.points[:4]]  # step 0 starts at x
    for i in range(4):
        for j in range(i):
            assert not torch.allclose(first[i], first[j])
    noise = torch.stack(first)
    assert abs(float(noise.mean())) < 0.15 and 0.85 < float(noise.std()) < 1.15
    # Independent across samples: empirical correlations are small.
    flat = noise.flatten(1).numpy()
    corr = np.corrcoef(flat)
    assert np.all(np.abs(corr[np.triu_indices(4, 1)]) < 0.3)


def test_so_without_noise_is_pgd_without_random_start():
    model = tiny_model(1)
    x, y = random_images((3, 1, 4, 4), seed=4), torch.tensor([0, 5, 9])
    so = SO(model, eps=0.2, steps=3, alpha=0.05, loss="ce", samples=1, sigma=0.0)
    pgd = PGD(model, eps=0.2, steps=3, alpha=0.05, random_start=False)
    assert torch.equal(so(x, y), pgd(x, y))


def test_so_defaults_are_the_authors_settings():
    model = tiny_model(1)
    linf = SO(model, eps=0.3)
    assert (linf.steps, linf.samples, linf.sigma, linf.loss) == (20, 10, 0.7, "ce")
    assert linf.alpha == pytest.approx(0.03) and not linf.random_start
    l2 = SO(model, eps=4.0, norm="l2")
    assert (l2.loss, l2.kappa) == ("cw", 50.0) and l2.alpha == pytest.approx(2.5 * 4.0 / 20)


# -- S-O, appendix: power iteration --------------------------------------------------------


def test_sopower_direction_is_the_top_eigenvector():
    model = tiny_model(1, num_classes=10, dtype=torch.float64, seed=1)
    x = random_images((3, 1, 4, 4), seed=5, dtype=torch.float64)
    y = torch.tensor([2, 4, 6])
    dense = InputHessian(model, x, y).to_dense()
    _, vectors = np.linalg.eigh(dense)
    top = vectors[:, :, -1]
    attack = SOPower(model, eps=0.1, power_iters=2000, tol=1e-10)
    found = attack.eigenvector(x, y)
    assert np.all(found.power.converged)
    assert np.all(np.abs(cosine(found.direction, top)) > 0.99)
    g = found.gradient.flatten(1)
    assert bool(((g * found.direction.flatten(1)).sum(1) >= 0).all())  # ascent sign


def test_sopower_falls_back_to_the_gradient_when_the_hessian_vanishes():
    """The CW margin of a piecewise-linear network has H = 0 almost everywhere."""
    model = tiny_model(1, dtype=torch.float64)
    x, y = random_images((2, 1, 4, 4), seed=6, dtype=torch.float64), torch.tensor([0, 1])
    found = SOPower(model, eps=0.1, loss="cw").eigenvector(x, y)
    assert found.fallback.all()
    torch.testing.assert_close(found.direction, found.gradient)
    result = SOPower(model, eps=0.1, loss="cw", steps=2).run(x, y)
    assert result.num_fallbacks == 4
