r"""InputHessian and its product strategies against closed forms and torch.autograd.functional.

Kills the mutants of ``krylovadv/torch/hessian.py`` and ``krylovadv/torch/hessian_products.py``
that the behavioural tests let survive (``python tools/run_mutation.py torch/hessian`` and
``torch/hessian_products``; equivalent ones listed in docs/dev/mutation-reports/torch-hessian.md).

References, none of which mirrors the implementation:

- a linear softmax classifier :math:`z = Wx + c`, whose cross-entropy input Hessian is
  :math:`H = W^\top(\operatorname{diag}p - pp^\top)W`, gradient :math:`W^\top(p - e_y)` and loss
  :math:`-\log p_y` in closed form (and Gauss–Newton equals it);
- a smooth network (tanh), per sample through ``torch.autograd.functional.hessian`` and
  ``jacobian`` (for :math:`J^\top S J`, which differs from :math:`H` there);
- a row-counting model wrapper for the active-set (``indices``) bookkeeping.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from krylovadv.torch import InputHessian
from krylovadv.torch.hessian_products import Point
from krylovadv.torch.losses import per_sample_loss

torch.set_num_threads(1)
D, K, B = 5, 3, 4


class RowCounter(nn.Module):
    """Wraps a model and records the number of rows of every forward pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(int(x.shape[0]))
        return self.inner(x)


def _linear(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(D, K).to(dtype).eval()


def _smooth(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 6), nn.Tanh(), nn.Linear(6, K)).double().eval()


def _data(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, D, generator=g, dtype=dtype)
    y = torch.tensor([0, 1, 2, 1])
    return x, y


def _closed_form(model: nn.Linear, x: torch.Tensor, y: torch.Tensor):
    """Per-sample loss, gradient and Hessian of the linear softmax classifier."""
    W = model.weight.detach()
    p = torch.softmax(model(x).detach(), dim=-1)
    loss = -torch.log(p[torch.arange(B), y])
    onehot = torch.nn.functional.one_hot(y, K).to(p.dtype)
    grad = (p - onehot) @ W
    H = torch.stack([W.T @ (torch.diag(pb) - torch.outer(pb, pb)) @ W for pb in p])
    return loss, grad, H


def _autograd_hessians(model, x, y, loss="ce", kappa=50.0):
    out = []
    for b in range(x.shape[0]):

        def f(xb, b=b):
            return per_sample_loss(model(xb[None]), y[b : b + 1], loss=loss, kappa=kappa).sum()

        out.append(torch.autograd.functional.hessian(f, x[b]))
    return torch.stack(out)


def _dense(H: InputHessian) -> torch.Tensor:
    """Every sample's Hessian, column by column through matvec (one sample at a time)."""
    eye = torch.eye(H.n, dtype=H.x.dtype)
    return torch.stack(
        [
            torch.stack([H.matvec(eye[j : j + 1], np.array([b]))[0] for j in range(H.n)], dim=1)
            for b in range(H.batch_size)
        ]
    )


@pytest.mark.parametrize(
    ("method", "variant"),
    [
        ("exact", "double-backward"),
        ("exact", "forward-over-reverse"),
        ("gauss-newton", "double-backward"),
    ],
)
def test_linear_softmax_closed_form(method, variant):
    model = _linear()
    x, y = _data()
    loss, grad, H = _closed_form(model, x, y)
    op = InputHessian(model, x, y, method=method, exact_variant=variant)
    torch.testing.assert_close(op.loss_values, loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.gradient, grad, rtol=1e-12, atol=1e-12)
    assert op.gradient.shape == (B, D) and not op.gradient.requires_grad
    V = torch.randn(B, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = torch.einsum("bij,bj->bi", H, V)
    torch.testing.assert_close(op.matvec(V), expected, rtol=1e-10, atol=1e-12)
    # A permuted subset of rows: row r is sample idx[r]'s product.
    idx = np.array([3, 1])
    torch.testing.assert_close(op.matvec(V[idx], idx), expected[idx], rtol=1e-10, atol=1e-12)
    # Repeated indices (to_dense style) and a single sample (rebuild).
    rep = np.array([2, 2, 0])
    torch.testing.assert_close(op.matvec(V[rep], rep), expected[rep], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        op.matvec(V[[1]], np.array([1])), expected[[1]], rtol=1e-10, atol=1e-12
    )
    assert op.num_hvps == B + 2 + 3 + 1
    torch.testing.assert_close(_dense(op), H, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["ce", "cw"])
@pytest.mark.parametrize("variant", ["double-backward", "forward-over-reverse"])
def test_smooth_network_matches_autograd_hessian(loss, variant):
    model = _smooth()
    x, y = _data()
    op = InputHessian(model, x, y, loss=loss, exact_variant=variant, kappa=0.3)
    ref = _autograd_hessians(model, x, y, loss=loss, kappa=0.3)
    torch.testing.assert_close(_dense(op), ref, rtol=1e-9, atol=1e-12)
    values = per_sample_loss(model(x), y, loss=loss, kappa=0.3).detach()
    torch.testing.assert_close(op.loss_values, values, rtol=1e-12, atol=1e-12)


def test_gauss_newton_is_jt_s_j_and_differs_from_exact_on_smooth_network():
    model = _smooth()
    x, y = _data()
    gn = InputHessian(model, x, y, method="gauss-newton")
    ref = []
    for b in range(B):
        J = torch.autograd.functional.jacobian(lambda xb: model(xb[None])[0], x[b])
        p = torch.softmax(model(x[b : b + 1])[0].detach(), dim=-1)
        ref.append(J.T @ (torch.diag(p) - torch.outer(p, p)) @ J)
    ref = torch.stack(ref)
    G = _dense(gn)
    torch.testing.assert_close(G, ref, rtol=1e-9, atol=1e-12)
    exact = _autograd_hessians(model, x, y)
    assert (G - exact).abs().max() > 1e-3  # the dropped term sum_k dl/dz_k grad^2 z_k
    values = per_sample_loss(model(x), y)
    torch.testing.assert_close(gn.loss_values, values.detach(), rtol=1e-12, atol=1e-12)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(per_sample_loss(model(xg), y).sum(), xg)
    torch.testing.assert_close(gn.gradient, grad, rtol=1e-12, atol=1e-12)


def test_gauss_newton_rejects_other_losses_naming_them():
    model = _linear()
    x, y = _data()
    with pytest.raises(ValueError, match=r"'cw'.*method='exact'"):
        InputHessian(model, x, y, loss="cw", method="gauss-newton")
    with pytest.raises(ValueError, match="a callable loss"):
        InputHessian(model, x, y, loss=lambda z, t: z.sum(-1), method="gauss-newton")


def test_finite_differences_error_follows_the_step_order():
    """Forward error O(eta), central O(eta^2), against the exact Hessian of a smooth network."""
    model = _smooth()
    x, y = _data()
    H = _autograd_hessians(model, x, y)
    V = torch.randn(B, D, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    V = V / V.norm(dim=1, keepdim=True)
    exact = torch.einsum("bij,bj->bi", H, V)
    errs = {}
    for method in ("fd-forward", "fd-central"):
        for eta in (1e-2, 5e-3):
            op = InputHessian(model, x, y, method=method, eta=eta)
            out = op.matvec(V)
            errs[method, eta] = ((out - exact).norm(dim=1) / exact.norm(dim=1)).max().item()
            np.testing.assert_allclose(op.fd_step, eta, rtol=1e-6)
            assert op.step_rounding.shape == (B,)
            assert np.all(op.step_rounding < 1e-8)
    # Halving the step halves the forward error and quarters the central one.
    assert 1.6 < errs["fd-forward", 1e-2] / errs["fd-forward", 5e-3] < 2.4
    assert 3.2 < errs["fd-central", 1e-2] / errs["fd-central", 5e-3] < 4.8
    assert errs["fd-central", 5e-3] < errs["fd-forward", 5e-3] / 10
    # The default steps are far more accurate than these large ones.
    for method in ("fd-forward", "fd-central"):
        op = InputHessian(model, x, y, method=method)
        err = ((op.matvec(V) - exact).norm(dim=1) / exact.norm(dim=1)).max().item()
        assert err < 1e-6
        est = op.fd_error_estimate(seed=0)
        assert est.shape == (B,) and np.all(est < 1e-4)
        est_np = op.fd_error_estimate(V.numpy())
        assert est_np.shape == (B,) and np.all(np.isfinite(est_np))
        assert op.fd_operator is not None


def test_fd_error_estimate_directions_and_seed_reach_the_estimator():
    """Explicit directions (numpy, float32 torch) and the seed are passed on, converted."""
    model = _smooth()
    x, y = _data()
    op = InputHessian(model, x, y, method="fd-forward")
    V = torch.randn(B, D, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    ref = op.fd_operator.estimate_error(V, seed=None)
    np.testing.assert_array_equal(op.fd_error_estimate(V), ref)
    np.testing.assert_array_equal(op.fd_error_estimate(V.numpy()), ref)
    V32 = V.float()
    np.testing.assert_array_equal(
        op.fd_error_estimate(V32), op.fd_operator.estimate_error(V32.double(), seed=None)
    )
    seeded = op.fd_operator.estimate_error(None, seed=11)
    np.testing.assert_array_equal(op.fd_error_estimate(seed=11), seeded)
    assert not np.array_equal(seeded, ref)


def test_fd_gradient_rows_only_for_active_samples():
    counter = RowCounter(_smooth())
    x, y = _data()
    op = InputHessian(counter, x, y, method="fd-central", eta=1e-3)
    counter.rows.clear()
    before = op.rows_evaluated
    V = torch.ones(2, D, dtype=torch.float64)
    out = op.matvec(V, np.array([2, 0]))
    assert sum(counter.rows) == 4 and max(counter.rows) == 2  # two gradients of 2 rows
    assert op.rows_evaluated - before == 4
    full = op.matvec(torch.ones(B, D, dtype=torch.float64))
    torch.testing.assert_close(out, full[[2, 0]], rtol=1e-12, atol=1e-12)


def test_exact_and_gn_compaction_counts_rows():
    for method in ("exact", "gauss-newton"):
        counter = RowCounter(_linear())
        x, y = _data()
        op = InputHessian(counter, x, y, method=method, rebuild_fraction=0.5)
        assert op.rows_built == B and op.rows_evaluated == 0
        n_fwd = len(counter.rows)
        V = torch.ones(B, D, dtype=torch.float64)
        op.matvec(V[:2], np.array([1, 3]))  # 2 >= 0.5 * 4: reuse the full graph
        assert len(counter.rows) == n_fwd and op.rows_built == B
        assert op.rows_evaluated == B
        op.matvec(V[:1], np.array([2]))  # 1 < 0.5 * 4: rebuild for one sample
        assert counter.rows[-1] == 1 and op.rows_built == B + 1
        assert op.rows_evaluated == B + 1
        op.matvec(V[:1], np.array([2]))  # the subset graph covers it
        assert op.rows_built == B + 1 and op.rows_evaluated == B + 2
        op.matvec(V[:2], np.array([0, 2]))  # not covered by the subset: full graph (2 >= 2)
        assert op.rows_built == B + 1 and op.rows_evaluated == 2 * B + 2
        op.clear_cache()
        op.matvec(V[:1], np.array([2]))  # subset dropped: rebuild
        assert op.rows_built == B + 2
        op.matvec(V[:3], np.array([1, 1, 2]))  # repeated: a graph with one row per product
        assert op.rows_built == B + 5
        op.matvec(V[:1], np.array([2]))  # the repeated-index graph was not kept as the subset
        assert op.rows_built == B + 5


def test_rebuild_fraction_zero_never_rebuilds_and_one_always():
    x, y = _data()
    op0 = InputHessian(_linear(), x, y, rebuild_fraction=0.0)
    op0.matvec(torch.ones(1, D, dtype=torch.float64), np.array([3]))
    assert op0.rows_built == B and op0.rows_evaluated == B
    op1 = InputHessian(_linear(), x, y, rebuild_fraction=1.0)
    op1.matvec(torch.ones(3, D, dtype=torch.float64), np.array([0, 1, 2]))
    assert op1.rows_built == B + 3 and op1.rows_evaluated == 3


def test_forward_over_reverse_counts_active_rows():
    counter = RowCounter(_smooth())
    x, y = _data()
    op = InputHessian(counter, x, y, exact_variant="forward-over-reverse")
    assert op.rows_built == 0
    op.matvec(torch.ones(2, D, dtype=torch.float64), np.array([0, 3]))
    assert op.rows_evaluated == 2 and counter.rows[-1] == 2
    op.matvec(torch.ones(3, D, dtype=torch.float64), np.array([1, 2, 3]))
    assert op.rows_evaluated == 5 and counter.rows[-1] == 3  # the counter accumulates


def test_dtype_device_and_containers_preserved():
    model = _linear()
    x, y = _data()
    op = InputHessian(model, x, y)
    _, _, H = _closed_form(model, x, y)
    V = np.random.default_rng(0).standard_normal((B, D)).astype(np.float32)
    out = op.matvec(V)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (B, D)
    ref = np.einsum("bij,bj->bi", H.numpy(), V.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    out_t = op.matvec(torch.as_tensor(V))
    assert out_t.dtype == torch.float32
    empty = op.matvec(torch.zeros(0, D, dtype=torch.float32), np.zeros(0, dtype=np.int64))
    assert empty.shape == (0, D) and empty.dtype == torch.float32
    with pytest.raises(TypeError, match="list"):
        op.matvec([[0.0] * D] * B)
    # float32 operator: products in float32
    op32 = InputHessian(_linear(dtype=torch.float32), x.float(), y)
    assert op32.matvec(torch.ones(B, D)).dtype == torch.float32
    assert op32.dtype == torch.float32 and op32.shape == (D, D) and op32.batch_size == B


def test_image_shaped_inputs_and_input_untouched():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, K)).double().eval()
    x = torch.rand(2, 1, 2, 3, dtype=torch.float64)
    y = torch.tensor([1, 2])
    x0 = x.clone()
    op = InputHessian(model, x, y)
    assert op.image_shape == (1, 2, 3) and op.shape == (6, 6) and op.n == 6
    assert op.gradient.shape == (2, 6)
    op.matvec(torch.ones(2, 6, dtype=torch.float64))
    assert torch.equal(x, x0) and not x.requires_grad
    assert not op.x.requires_grad
    assert op.x.data_ptr() != x.data_ptr()
    assert all(not p.grad_fn for p in model.parameters())
    assert model.training is False


def test_input_validation_names_the_argument():
    model = _linear()
    x, y = _data()
    with pytest.raises(ValueError, match="eta"):
        InputHessian(model, x, y, eta=1e-3)
    with pytest.raises(ValueError, match="eta"):
        InputHessian(model, x, y, method="fd-forward", eta=0.0)
    with pytest.raises(ValueError, match="rebuild_fraction"):
        InputHessian(model, x, y, rebuild_fraction=1.5)
    with pytest.raises(ValueError, match="rebuild_fraction"):
        InputHessian(model, x, y, rebuild_fraction=-0.1)
    with pytest.raises(ValueError, match="kappa"):
        InputHessian(model, x, y, loss="cw", kappa=-1.0)
    with pytest.raises(ValueError, match="method"):
        InputHessian(model, x, y, method="newton")
    with pytest.raises(ValueError, match="exact_variant"):
        InputHessian(model, x, y, exact_variant="reverse")
    with pytest.raises(ValueError, match="loss"):
        InputHessian(model, x, y, loss="mse")
    op = InputHessian(model, x, y)
    V = torch.ones(B, D, dtype=torch.float64)
    with pytest.raises(ValueError, match="indices has 3 entries for 4 rows"):
        op.matvec(V, np.array([0, 1, 2]))
    with pytest.raises(IndexError, match=r"\[0, 4\); got \[0, 4\]"):
        op.matvec(V, np.array([0, 1, 2, 4]))
    with pytest.raises(IndexError, match=r"got \[-1, 2\]"):
        op.matvec(V, np.array([0, 1, 2, -1]))
    with pytest.raises(ValueError) as err:
        op.fd_error_estimate()
    assert str(err.value) == (
        "fd_error_estimate needs method='fd-forward' or 'fd-central'; "
        "exact products have no truncation error."
    )
    assert op.fd_step is None and op.step_rounding is None and op.fd_operator is None
    # An infinite CW confidence is allowed.
    InputHessian(model, x, y, loss="cw", kappa=float("inf"))
    # indices given as a torch tensor of shape (k, 1) are flattened.
    out = op.matvec(V[:2], torch.tensor([[2], [0]]))
    torch.testing.assert_close(out, op.matvec(V)[[2, 0]])


def test_dropout_in_training_mode_warns_and_eval_does_not():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 6), nn.Dropout(0.5), nn.Linear(6, K)).double()
    x, y = _data()
    with pytest.warns(RuntimeWarning, match=r"Dropout module '1' is in training") as rec:
        InputHessian(model, x, y)
    assert len(rec) == 1
    assert str(rec[0].message) == (
        "Dropout module '1' is in training mode: the loss is random, so Hessian products "
        "are inconsistent. Call model.eval() first."
    )
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        InputHessian(model, x, y)
    model.train()
    model[1].p = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        InputHessian(model, x, y)
    with pytest.warns(RuntimeWarning, match="Dropout module 'model' is in training"):
        InputHessian(nn.Dropout(0.3), x, y)  # the model itself: logits = dropped-out x


def test_repr_names_method_and_variant():
    model = _linear()
    x, y = _data()
    r = repr(InputHessian(model, x, y, exact_variant="forward-over-reverse"))
    assert r == (
        f"<InputHessian d={D} batch_size={B} dtype=torch.float64 loss='ce' "
        "method='exact' (forward-over-reverse)>"
    )
    r = repr(InputHessian(model, x, y, method="fd-central", loss="cw"))
    assert r == (
        f"<InputHessian d={D} batch_size={B} dtype=torch.float64 loss='cw' method='fd-central'>"
    )


def test_zero_hessian_when_gradient_is_constant():
    """CW margin of a linear model: the gradient is W_j - W_y, constant in x, so H = 0."""
    model = _linear()
    x, y = _data()
    for method in ("exact", "fd-forward"):
        op = InputHessian(model, x, y, loss="cw", method=method)
        out = op.matvec(torch.ones(B, D, dtype=torch.float64))
        assert out.shape == (B, D)
        torch.testing.assert_close(out, torch.zeros(B, D, dtype=torch.float64), atol=1e-7, rtol=0)


def test_input_errors_name_x_and_y_word_for_word():
    model = _linear()
    x, y = _data()
    with pytest.raises(TypeError, match=r"^x must be a torch\.Tensor"):
        InputHessian(model, x.numpy(), y)
    with pytest.raises(ValueError, match=r"^x must have shape \(B, \.\.\.\)"):
        InputHessian(model, x[0], y)
    with pytest.raises(ValueError, match=r"^y must have shape \(4,\)"):
        InputHessian(model, x, y[:3])
    # The meta device stands in for a GPU: the model's parameters are not where x is.
    with pytest.raises(ValueError, match=r"^x is on cpu but the model is on meta"):
        InputHessian(_linear().to("meta"), x, y)


# -- survivors of the full runs (helper mut15) ------------------------------------------


def test_cw_default_confidence_is_fifty():
    """The CW margin saturates at kappa: with no kappa given the loss values are exactly 50."""
    model = _linear()
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, 80.0, 0.0]))  # class 1 leads by 80 > kappa
    x, _ = _data()
    y = torch.tensor([0, 2, 0, 2])
    op = InputHessian(model, x, y, loss="cw")
    torch.testing.assert_close(op.loss_values, torch.full((B,), 50.0, dtype=torch.float64))
    assert op.kappa == 50.0
    wider = InputHessian(model, x, y, loss="cw", kappa=70.0)
    torch.testing.assert_close(wider.loss_values, torch.full((B,), 70.0, dtype=torch.float64))


def test_labels_on_another_device_are_rejected_naming_y():
    """The meta device stands in for a GPU: labels not on x's device raise before any product."""
    model = _linear()
    x, y = _data()
    with pytest.raises(ValueError) as err:
        InputHessian(model, x, y.to("meta"))
    assert str(err.value) == (
        "y is on meta but the inputs are on cpu; move it with y.to(x.device)."
    )


@pytest.mark.parametrize(
    ("method", "variant"), [("fd-forward", "double-backward"), ("exact", "forward-over-reverse")]
)
def test_clear_cache_is_a_no_op_without_a_graph_cache(method, variant):
    model = _smooth()
    x, y = _data()
    op = InputHessian(model, x, y, method=method, exact_variant=variant)
    V = torch.ones(B, D, dtype=torch.float64)
    before = op.matvec(V)
    op.clear_cache()
    torch.testing.assert_close(op.matvec(V), before, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("method", "variant"),
    [
        ("exact", "double-backward"),
        ("exact", "forward-over-reverse"),
        ("gauss-newton", "double-backward"),
        ("fd-forward", "double-backward"),
        ("fd-central", "double-backward"),
    ],
)
def test_float32_directions_are_computed_in_the_operators_float64(method, variant):
    """float32 rows (torch or numpy) are promoted to the operator's float64, then rounded back."""
    model = _smooth()
    x, y = _data()
    op = InputHessian(model, x, y, method=method, exact_variant=variant)
    V = torch.randn(B, D, generator=torch.Generator().manual_seed(13)).float()
    ref = op.matvec(V.double())
    out_t = op.matvec(V)
    assert out_t.dtype == torch.float32
    assert torch.equal(out_t, ref.float())
    out_np = op.matvec(V.numpy())
    assert out_np.dtype == np.float32
    np.testing.assert_array_equal(out_np, ref.float().numpy())
    if op.fd_operator is not None:
        est = op.fd_error_estimate(V)
        np.testing.assert_array_equal(est, op.fd_error_estimate(V.double()))


def test_other_array_api_objects_are_rejected_by_type_name():
    class FakeArray:
        """An array-API object that is neither a torch tensor nor a numpy array."""

        shape = (B, D)
        ndim = 2

        def __array_namespace__(self, api_version=None):
            return np

    x, y = _data()
    op = InputHessian(_linear(), x, y)
    with pytest.raises(TypeError) as err:
        op.matvec(FakeArray())
    assert str(err.value) == (
        "InputHessian multiplies torch tensors or numpy arrays; got FakeArray."
    )


def test_gauss_newton_error_message_word_for_word():
    model = _linear()
    x, y = _data()
    tail = (
        "implemented for loss='ce' (S = diag p - p p^T) and not for {}: the CW margin is "
        "piecewise linear in the logits (S = 0 almost everywhere, so J^T S J = 0), and a "
        "callable's S is unknown. Use method='exact'."
    )
    head = "method='gauss-newton' needs the loss's Hessian in the logits, S; it is "
    with pytest.raises(ValueError) as err:
        InputHessian(model, x, y, loss="cw", method="gauss-newton")
    assert str(err.value) == head + tail.format("'cw'")
    with pytest.raises(ValueError) as err:
        InputHessian(model, x, y, loss=lambda z, t: z.sum(-1), method="gauss-newton")
    assert str(err.value) == head + tail.format("'a callable loss'")


class ConstantLogits(nn.Module):
    """Logits that depend on a parameter but not on x: the input gradient and Hessian are 0."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], K)


@pytest.mark.parametrize("method", ["exact", "gauss-newton", "fd-forward"])
@pytest.mark.parametrize("model", ["parameter", "no-graph"])
def test_logits_independent_of_x_give_zero_gradient_and_hessian(method, model):
    """Every method agrees with the closed form g = 0, H = 0 when x does not reach the logits."""
    if model == "parameter":
        net = ConstantLogits().eval()
    else:  # no autograd graph at all (e.g. a lookup table)

        def net(inputs):
            return torch.zeros(inputs.shape[0], K, dtype=inputs.dtype)

    x, y = _data()
    op = InputHessian(net, x, y, method=method)
    zeros = torch.zeros(B, D, dtype=torch.float64)
    torch.testing.assert_close(op.gradient, zeros, rtol=0, atol=0)
    torch.testing.assert_close(op.matvec(torch.ones(B, D, dtype=torch.float64)), zeros)
    torch.testing.assert_close(
        op.matvec(torch.ones(1, D, dtype=torch.float64), np.array([2])), zeros[:1]
    )


def test_forward_over_reverse_silences_only_torchs_jit_deprecation():
    """torch's own jit.script deprecation is hidden; the model's warnings reach the user."""

    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = _smooth()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            warnings.warn("Noisy.forward is deprecated", DeprecationWarning, stacklevel=2)
            warnings.warn("my torch.jit.script helper is deprecated", UserWarning, stacklevel=2)
            return self.inner(x)

    x, y = _data()
    quiet = InputHessian(_smooth(), x, y, exact_variant="forward-over-reverse")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        quiet.matvec(torch.ones(B, D, dtype=torch.float64))
    assert [str(r.message) for r in rec] == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # construction runs the model too
        noisy = InputHessian(Noisy().eval(), x, y, exact_variant="forward-over-reverse")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        noisy.matvec(torch.ones(B, D, dtype=torch.float64))
    kinds = {(r.category, str(r.message)) for r in rec}
    assert kinds == {
        (DeprecationWarning, "Noisy.forward is deprecated"),
        (UserWarning, "my torch.jit.script helper is deprecated"),
    }


def test_fd_forward_reuses_the_gradient_at_x():
    """fd-forward takes g(x) from construction: one gradient of the active rows per product."""
    counter = RowCounter(_smooth())
    x, y = _data()
    op = InputHessian(counter, x, y, method="fd-forward", eta=1e-4)
    assert op.rows_evaluated == 0
    counter.rows.clear()
    op.matvec(torch.ones(2, D, dtype=torch.float64), np.array([3, 1]))
    assert counter.rows == [2] and op.rows_evaluated == 2


def _message(exc_type, call) -> str:
    with pytest.raises(exc_type) as err:
        call()
    return str(err.value)


def test_validation_messages_word_for_word():
    """Each error names the argument, the valid values and the fix, in full."""
    model = _linear()
    x, y = _data()
    V = torch.ones(B, D, dtype=torch.float64)
    op = InputHessian(model, x, y)
    cases = [
        (
            lambda: InputHessian(model, x, y, method="newton"),
            "method must be one of 'exact', 'fd-forward', 'fd-central', 'gauss-newton'; "
            "got 'newton'.",
        ),
        (
            lambda: InputHessian(model, x, y, exact_variant="reverse"),
            "exact_variant must be one of 'double-backward', 'forward-over-reverse'; "
            "got 'reverse'.",
        ),
        (
            lambda: InputHessian(model, x, y, loss="mse"),
            "loss must be one of 'ce', 'cw'; got 'mse'.",
        ),
        (
            lambda: InputHessian(model, x, y, eta=1e-3),
            "eta is the finite-difference step; it only applies to method='fd-forward' or "
            "'fd-central' (exact products need none).",
        ),
        (
            lambda: InputHessian(model, x, y, method="fd-central", eta=-2.0),
            "eta must be a finite number > 0; got -2.0.",
        ),
        (
            lambda: InputHessian(model, x, y, loss="cw", kappa=-1.0),
            "kappa must be a number >= 0; got -1.0.",
        ),
        (
            lambda: InputHessian(model, x, y, rebuild_fraction=-0.5),
            "rebuild_fraction must be a finite number >= 0; got -0.5.",
        ),
        (
            lambda: InputHessian(model, x, y, rebuild_fraction=1.25),
            "rebuild_fraction must lie in [0, 1]; got 1.25.",
        ),
        (lambda: op.matvec(V, np.array([0, 1, 2])), "indices has 3 entries for 4 rows."),
    ]
    for call, text in cases:
        assert _message(ValueError, call) == text
    assert (
        _message(IndexError, lambda: op.matvec(V, np.array([1, 5, 2, 0])))
        == "indices must lie in [0, 4); got [0, 5]."
    )
    assert (
        _message(IndexError, lambda: op.matvec(V[:1], np.array([-3])))
        == "indices must lie in [0, 4); got [-3, -3]."
    )
    # Exactly at the bounds is fine: rebuild_fraction 0 and 1, indices 0 and B - 1.
    out = op.matvec(V[:2], np.array([0, B - 1]))
    torch.testing.assert_close(out, op.matvec(V)[[0, B - 1]], rtol=0, atol=0)


def test_directions_are_moved_to_the_operators_device_first():
    """The meta device stands in for a GPU: a direction elsewhere is copied to x's device.

    A meta tensor holds no data, so torch refuses that copy; without the move the product
    would fail later, inside autograd, with another error.
    """
    x, y = _data()
    V = torch.ones(B, D, dtype=torch.float64, device="meta")
    for method in ("exact", "fd-forward"):
        op = InputHessian(_smooth(), x, y, method=method)
        with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
            op.matvec(V)
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        op.fd_error_estimate(V)


def test_point_leaf_of_the_whole_batch_is_a_view_of_x():
    """The full batch in order needs no copy of x (nor of y); any other selection is gathered."""
    x, y = _data()
    point = Point(_linear(), x, y, "ce", 50.0)
    leaf, y_rows = point.leaf(np.arange(B))
    assert leaf.requires_grad and leaf.data_ptr() == x.data_ptr() and y_rows is y
    assert not x.requires_grad
    idx = np.array([3, 0, 1, 2])  # all samples, another order: a gathered copy
    leaf, y_rows = point.leaf(idx)
    assert leaf.data_ptr() != x.data_ptr()
    torch.testing.assert_close(leaf.detach(), x[idx], rtol=0, atol=0)
    assert torch.equal(y_rows, y[idx])


def test_forward_over_reverse_first_product_raises_no_jit_deprecation():
    """torch scripts its forward-AD decompositions (and warns) only on first use in a process.

    So the first product runs in a fresh interpreter, with DeprecationWarnings as errors, on
    the copy of krylovadv under test (the repository root is the working directory).
    """
    script = (
        "import warnings, torch\n"
        "from krylovadv.torch import InputHessian\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),\n"
        "                            torch.nn.Linear(4, 2)).double().eval()\n"
        "x = torch.randn(2, 3, dtype=torch.float64)\n"
        "op = InputHessian(model, x, torch.tensor([0, 1]), exact_variant='forward-over-reverse')\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "print(op.matvec(torch.ones(2, 3, dtype=torch.float64)).shape)\n"
    )
    # The same product in this process too: mutmut maps a test to the functions it calls in
    # its own process, so this line makes it run the test for mutants of those functions.
    x, y = _data()
    op = InputHessian(_smooth(), x, y, exact_variant="forward-over-reverse")
    assert op.matvec(torch.ones(B, D, dtype=torch.float64)).shape == (B, D)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "torch.Size([2, 3])"
