"""Input Hessians as batched linear operators (krylovadv.torch.hessian)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import krylovadv
from krylovadv.torch import InputHessian, per_sample_loss

pytestmark = pytest.mark.usefixtures("single_thread")

NUM_CLASSES = 4
VARIANTS = ["double-backward", "forward-over-reverse"]


_REFERENCE: dict[tuple[str, str], torch.Tensor] = {}


def autograd_hessians(problem, loss="ce"):
    """Per-sample dense Hessians from torch.autograd.functional.hessian, (B, d, d).

    Cached by problem name (the fixtures are deterministic).
    """
    key = (problem.name, loss)
    if key in _REFERENCE:
        return _REFERENCE[key]
    blocks = []
    for i in range(problem.x.shape[0]):

        def f(xi, i=i):
            logits = problem.model(xi.reshape(1, *problem.x.shape[1:]))
            return per_sample_loss(logits, problem.y[i : i + 1], loss).sum()

        H = torch.autograd.functional.hessian(f, problem.x[i].reshape(-1), vectorize=True)
        blocks.append(H.reshape(problem.d, problem.d))
    _REFERENCE[key] = torch.stack(blocks)
    return _REFERENCE[key]


_DENSE: dict[str, np.ndarray] = {}


def dense_hessians(problem):
    """``InputHessian(...).to_dense()`` as numpy (B, d, d), cached by problem name."""
    if problem.name not in _DENSE:
        _DENSE[problem.name] = InputHessian(problem.model, problem.x, problem.y).to_dense()
    return _DENSE[problem.name]


def exact_products(problem, v, loss="ce"):
    return InputHessian(problem.model, problem.x, problem.y, loss=loss).matvec(v)


def random_directions(batch, d, seed=0, dtype=torch.float64):
    return torch.randn(batch, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- exactness ---------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_exact_dense_equals_autograd_hessian(problem, loss, variant):
    H = InputHessian(problem.model, problem.x, problem.y, loss=loss, exact_variant=variant)
    dense = H.to_dense(like=problem.x.reshape(problem.x.shape[0], -1))
    assert isinstance(dense, torch.Tensor) and dense.shape == (6, problem.d, problem.d)
    expected = autograd_hessians(problem, loss)
    scale = float(expected.abs().max())
    torch.testing.assert_close(dense, expected, rtol=1e-10, atol=1e-12 * max(scale, 1.0))
    if not (problem.piecewise_linear and loss == "cw"):
        assert scale > 0  # (a piecewise-linear margin has H = 0: nothing else to see)
    assert H.num_hvps == 6 * problem.d


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_gradient_and_loss_attributes(problem, loss):
    H = InputHessian(problem.model, problem.x, problem.y, loss=loss)
    values, grad = krylovadv.torch.input_gradient(problem.model, problem.x, problem.y, loss=loss)
    assert H.gradient.shape == (6, problem.d) and H.loss_values.shape == (6,)
    torch.testing.assert_close(H.gradient, grad.reshape(6, -1), rtol=1e-13, atol=1e-16)
    torch.testing.assert_close(H.loss_values, values, rtol=1e-13, atol=0)
    assert H.image_shape == tuple(problem.x.shape[1:])
    assert H.method == "exact" and H.shape == (problem.d, problem.d) and H.batch_size == 6
    assert not H.gradient.requires_grad and not H.loss_values.requires_grad


def test_variants_agree_in_float32(relu_problem):
    p = relu_problem
    model32, x32 = p.model.float(), p.x.float()
    v = random_directions(6, p.d, dtype=torch.float32)
    products = [InputHessian(model32, x32, p.y, exact_variant=var).matvec(v) for var in VARIANTS]
    reference = exact_products(p.__class__(p.name, p.model.double(), p.x, p.y, True), v.double())
    for hv in products:
        assert hv.dtype == torch.float32
        err = (hv.double() - reference).norm(dim=1) / reference.norm(dim=1)
        assert float(err.max()) < 1e-4


# -- finite differences ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "etas", "rate"),
    [
        ("fd-forward", (1e-2, 2.5e-3, 6.25e-4), 4.0),  # error O(eta)
        ("fd-central", (1e-1, 2.5e-2, 6.25e-3), 16.0),  # error O(eta^2)
    ],
)
def test_fd_converges_at_its_order(softplus_problem, method, etas, rate):
    p = softplus_problem
    v = random_directions(6, p.d)
    exact = exact_products(p, v)
    errors = []
    for eta in etas:
        H = InputHessian(p.model, p.x, p.y, method=method, eta=eta)
        err = ((H.matvec(v) - exact).norm(dim=1) / exact.norm(dim=1)).numpy()
        errors.append(err)
        np.testing.assert_allclose(H.fd_step, eta * v.norm(dim=1).numpy(), rtol=1e-10)
        assert np.all(H.step_rounding < 1e-10)
        # In the truncation-dominated range the operator's own estimate is right.
        np.testing.assert_allclose(H.fd_error_estimate(v), err, rtol=0.1)
    for coarse, fine in itertools.pairwise(errors):
        np.testing.assert_allclose(coarse / fine, rate, rtol=0.05)


@pytest.mark.parametrize(("method", "tol"), [("fd-forward", 1e-5), ("fd-central", 1e-8)])
def test_fd_default_step_is_accurate_in_float64(softplus_problem, method, tol):
    p = softplus_problem
    v = random_directions(6, p.d)
    H = InputHessian(p.model, p.x, p.y, method=method)
    exact = exact_products(p, v)
    err = (H.matvec(v) - exact).norm(dim=1) / exact.norm(dim=1)
    assert float(err.max()) < tol
    assert np.all(H.fd_error_estimate(seed=0) < 10 * tol)
    assert H.fd_operator is not None and H.rows_evaluated > 0


def test_fd_only_evaluates_the_requested_samples(softplus_problem):
    p = softplus_problem
    H = InputHessian(p.model, p.x, p.y, method="fd-central", eta=1e-3)
    before = H.rows_evaluated
    v = random_directions(2, p.d)
    hv = H.matvec(v, torch.tensor([4, 1]))
    assert H.rows_evaluated - before == 4  # two gradients for each of the two samples
    full = H.matvec(torch.zeros(6, p.d, dtype=torch.float64).index_copy(0, torch.tensor([4, 1]), v))
    torch.testing.assert_close(hv, full[[4, 1]], rtol=1e-12, atol=1e-14)


# -- structure ---------------------------------------------------------------------------
def test_batch_hessian_is_block_diagonal(problem):
    """Eval mode: a direction on sample 0 gives exactly 0 in every other sample's rows."""
    x = problem.x.clone().requires_grad_(True)
    loss = per_sample_loss(problem.model(x), problem.y).sum()
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    v = torch.zeros_like(x)
    v[0] = torch.randn_like(x[0])
    (hv,) = torch.autograd.grad(g, x, grad_outputs=v)
    assert torch.count_nonzero(hv[1:]) == 0
    assert torch.count_nonzero(hv[0]) > 0
    H = InputHessian(problem.model, problem.x, problem.y)
    torch.testing.assert_close(
        H.matvec(v[:1].reshape(1, -1), torch.tensor([0]))[0],
        hv[0].reshape(-1),
        rtol=1e-12,
        atol=1e-15,
    )


def test_batchnorm_in_train_mode_couples_samples(bn_model):
    """Why the check exists: the same probe leaks across samples with train-mode BatchNorm."""
    x = torch.rand(4, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(4, dtype=torch.int64)
    (g,) = torch.autograd.grad(per_sample_loss(bn_model(x), y).sum(), x, create_graph=True)
    v = torch.zeros_like(x)
    v[0] = 1.0
    (hv,) = torch.autograd.grad(g, x, grad_outputs=v)
    assert torch.count_nonzero(hv[1:]) > 0


def test_relu_ce_hessian_is_psd_with_rank_at_most_k_minus_1(relu_problem):
    p = relu_problem
    dense = dense_hessians(p)
    assert isinstance(dense, np.ndarray) and dense.dtype == np.float64
    np.testing.assert_allclose(dense, np.swapaxes(dense, 1, 2), rtol=0, atol=1e-15)
    eigs = np.linalg.eigvalsh(dense)
    top = np.abs(eigs).max(axis=1, keepdims=True)
    assert np.all(eigs >= -1e-10 * top)
    rank = (np.abs(eigs) > 1e-10 * top).sum(axis=1)
    assert np.all(rank <= NUM_CLASSES - 1) and np.all(rank >= 1)


def test_power_iteration_finds_the_top_eigenvalue(relu_problem):
    p = relu_problem
    H = InputHessian(p.model, p.x, p.y)
    top = np.linalg.eigvalsh(dense_hessians(p))[:, -1]
    result = krylovadv.power_iteration(H, tol=1e-6, seed=0, maxiter=500)
    assert np.all(result.converged)
    np.testing.assert_allclose(result.eigenvalue, top, rtol=1e-9)  # Rayleigh: error ~ tol^2


# -- GMRES on the operator ------------------------------------------------------------------
def krylov_rhs(dense: np.ndarray, degrees) -> np.ndarray:
    """b_i = sum of the eigenvectors of H_i with the ``degrees[i]`` largest |eigenvalues|.

    GMRES on such a system converges after exactly ``degrees[i]`` iterations, so
    samples finish at different times and the active set shrinks.
    """
    rows = []
    for H_i, m in zip(dense, degrees, strict=True):
        w, q = np.linalg.eigh(H_i)
        order = np.argsort(-np.abs(w))[:m]
        rows.append(q[:, order].sum(axis=1))
    return np.stack(rows)


def assert_same_solve(a, b, x_tol):
    np.testing.assert_array_equal(np.asarray(a.status), np.asarray(b.status))
    np.testing.assert_array_equal(a.iterations, b.iterations)
    xa = a.x.numpy() if isinstance(a.x, torch.Tensor) else a.x
    xb = b.x.numpy() if isinstance(b.x, torch.Tensor) else b.x
    np.testing.assert_allclose(xa, xb, rtol=x_tol, atol=x_tol * np.abs(xb).max())


@pytest.mark.parametrize("rhs", ["gradient", "krylov"])
def test_gmres_on_operator_equals_gmres_on_dense(problem, rhs):
    H = InputHessian(problem.model, problem.x, problem.y)
    dense = dense_hessians(problem)  # numpy (B, d, d) from H.to_dense()
    if rhs == "gradient":
        b = H.gradient.clone()
    else:
        degrees = [1, 2, 3, 1, 2, 3] if problem.piecewise_linear else [1, 2, 4, 7, 12, 12]
        b = torch.as_tensor(krylov_rhs(dense, degrees))
    solve = dict(rtol=1e-10, restart=problem.d, maxiter=3)
    operator_result = krylovadv.gmres(H, b, **solve)
    dense_result = krylovadv.gmres(dense, b.numpy(), **solve)
    assert isinstance(operator_result.x, torch.Tensor)
    assert np.all(operator_result.converged)
    assert_same_solve(operator_result, dense_result, 1e-8)


def test_gmres_with_and_without_compaction_agree(problem):
    p = problem
    dense = dense_hessians(p)
    degrees = [1, 1, 1, 1, 3, 3] if p.piecewise_linear else [1, 1, 2, 2, 5, 12]
    b = torch.as_tensor(krylov_rhs(dense, degrees))
    solve = dict(rtol=1e-10, restart=p.d, maxiter=3)
    compacting = InputHessian(p.model, p.x, p.y)
    never = InputHessian(p.model, p.x, p.y, rebuild_fraction=0.0)
    with_compaction = krylovadv.gmres(compacting, b, **solve)
    without = krylovadv.gmres(never, b, **solve)
    assert_same_solve(with_compaction, without, 1e-10)
    assert with_compaction.iterations.tolist() == degrees
    # Compaction really happened: graphs were rebuilt for the few samples still
    # active and fewer network rows were processed in total.
    assert compacting.rows_built > 6 and never.rows_built == 6
    assert compacting.rows_evaluated < never.rows_evaluated
    assert compacting.num_hvps == never.num_hvps


def test_matvec_on_subsets_matches_full_products(problem):
    p = problem
    v = random_directions(6, p.d)
    full = exact_products(p, v)
    rng = np.random.default_rng(0)
    for fraction in (0.5, 0.0, 1.0):
        H = InputHessian(p.model, p.x, p.y, rebuild_fraction=fraction)
        for _ in range(5):
            k = int(rng.integers(1, 7))
            idx = rng.choice(6, size=k, replace=False)
            out = H.matvec(v[idx], torch.as_tensor(idx))
            torch.testing.assert_close(out, full[idx], rtol=1e-11, atol=1e-14)
        # Repeated samples (as in to_dense) and numpy inputs are fine too.
        idx = np.array([3, 3, 0, 3])
        out = H.matvec(v[idx].numpy(), idx)
        assert isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, full[idx].numpy(), rtol=1e-11, atol=1e-14)


def test_compaction_runs_the_network_on_active_samples_only(softplus_problem):
    p = softplus_problem
    batch_sizes = []
    hook = p.model[0].register_forward_pre_hook(
        lambda m, args: batch_sizes.append(args[0].shape[0])
    )
    try:
        H = InputHessian(p.model, p.x, p.y)
        v = random_directions(2, p.d)
        H.matvec(v, torch.tensor([5, 2]))  # 2 < 6 / 2: a graph for these 2 samples
        H.matvec(v[:1], torch.tensor([2]))  # reuses it (1 >= 2 / 2)
        H.matvec(v, torch.tensor([1, 5]))  # not covered: new graph for 2
    finally:
        hook.remove()
    assert batch_sizes == [6, 2, 2]
    assert H.rows_evaluated == 2 + 2 + 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"exact_variant": "forward-over-reverse"},
        {"method": "fd-central", "eta": 1e-4},
    ],
)
def test_works_inside_no_grad(softplus_problem, kwargs):
    """Attack loops often run under torch.no_grad(); the products must not care."""
    p = softplus_problem
    v = random_directions(6, p.d)
    expected = exact_products(p, v)
    with torch.no_grad():
        H = InputHessian(p.model, p.x, p.y, **kwargs)
        out = H.matvec(v)
        sub = H.matvec(v[[3, 0]], torch.tensor([3, 0]))
    tol = 1e-6 if "method" in kwargs else 1e-12
    torch.testing.assert_close(out, expected, rtol=tol, atol=tol * float(expected.abs().max()))
    torch.testing.assert_close(
        sub, expected[[3, 0]], rtol=tol, atol=tol * float(expected.abs().max())
    )
    assert H.gradient.abs().sum() > 0


# -- dtypes and array types ---------------------------------------------------------------
def test_output_follows_the_input_array_type(softplus_problem):
    p = softplus_problem
    H = InputHessian(p.model, p.x, p.y)
    v = random_directions(6, p.d)
    out64 = H.matvec(v)
    out32 = H.matvec(v.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-6, atol=1e-9)
    out_np = H.matvec(v.numpy())
    assert isinstance(out_np, np.ndarray)
    np.testing.assert_allclose(out_np, out64.numpy(), rtol=1e-13)


# -- model coupling, side effects and errors ----------------------------------------------
def test_training_batchnorm_is_rejected_and_mode_kept(bn_model):
    x = torch.rand(4, 1, 6, 6, dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.int64)
    for method in ("exact", "fd-forward"):
        with pytest.raises(ValueError, match=r"BatchNorm2d module '1' is in training.*eval\(\)"):
            InputHessian(bn_model, x, y, method=method)
    assert bn_model.training and bn_model[1].training
    bn_model.eval()
    H = InputHessian(bn_model, x, y)
    assert H.to_dense().shape == (4, 36, 36)
    assert not bn_model.training


def test_dropout_in_train_mode_warns(softplus_problem):
    p = softplus_problem
    model = nn.Sequential(p.model, nn.Dropout(0.5))
    with pytest.warns(RuntimeWarning, match="Dropout"):
        InputHessian(model, p.x, p.y)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        InputHessian(model, p.x, p.y)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"exact_variant": "forward-over-reverse"},
        {"method": "fd-forward"},
        {"method": "fd-central", "eta": 1e-3},
        {"loss": "cw"},
    ],
)
def test_no_gradients_left_and_inputs_untouched(relu_problem, kwargs):
    p = relu_problem
    x_before, y_before = p.x.clone(), p.y.clone()
    H = InputHessian(p.model, p.x, p.y, **kwargs)
    v = random_directions(6, p.d)
    H.matvec(v)
    H.matvec(v[:2], torch.tensor([1, 4]))
    krylovadv.gmres(H, H.gradient, rtol=1e-6, restart=4, maxiter=1)
    if H.method != "exact":
        H.fd_error_estimate(seed=0)
    assert all(param.grad is None for param in p.model.parameters())
    assert torch.equal(p.x, x_before) and torch.equal(p.y, y_before)
    assert not p.x.requires_grad and not p.model.training
    # The operator holds a copy: changing x afterwards does not change it.
    p.x.add_(0.25)
    torch.testing.assert_close(H.x.reshape(p.x.shape), x_before)


def test_bad_arguments_have_clear_errors(relu_problem):
    p = relu_problem
    model, x, y = p.model, p.x, p.y
    with pytest.raises(ValueError, match=r"method must be one of 'exact', 'fd-forward'"):
        InputHessian(model, x, y, method="fd")
    with pytest.raises(ValueError, match=r"exact_variant must be one of"):
        InputHessian(model, x, y, exact_variant="gauss-newton")
    with pytest.raises(ValueError, match=r"loss must be one of 'ce', 'cw'"):
        InputHessian(model, x, y, loss="mse")
    with pytest.raises(ValueError, match="eta is the finite-difference step"):
        InputHessian(model, x, y, eta=1e-3)
    with pytest.raises(ValueError, match="eta must be a finite number > 0"):
        InputHessian(model, x, y, method="fd-forward", eta=-1e-3)
    with pytest.raises(ValueError, match="rebuild_fraction"):
        InputHessian(model, x, y, rebuild_fraction=1.5)
    with pytest.raises(TypeError, match=r"dtype torch\.int64"):
        InputHessian(model, (x * 255).long(), y)
    with pytest.raises(TypeError, match=r"model's parameters are torch\.float64"):
        InputHessian(model, x.float(), y)
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        InputHessian(model, x, y[:5])
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        InputHessian(model, x, y + 10)
    with pytest.raises(ValueError, match="NaN or Inf in sample"):
        InputHessian(model, x * float("nan"), y)
    with pytest.raises(ValueError, match="unsqueeze"):
        InputHessian(model, x[0, 0, 0], y[:1])
    H = InputHessian(model, x, y)
    with pytest.raises(ValueError, match="fd_error_estimate needs method="):
        H.fd_error_estimate()
    with pytest.raises(ValueError, match=r"matvec expects x of shape \(k, 36\)"):
        H.matvec(torch.zeros(6, 35, dtype=torch.float64))
    with pytest.raises(ValueError, match="pass indices="):
        H.matvec(torch.zeros(2, 36, dtype=torch.float64))
    with pytest.raises(IndexError, match=r"indices must lie in \[0, 6\)"):
        H.matvec(torch.zeros(1, 36, dtype=torch.float64), torch.tensor([6]))
    assert H.step_rounding is None and H.fd_step is None and H.fd_operator is None
    assert "InputHessian" in repr(H)
