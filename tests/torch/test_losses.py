"""Per-sample losses and input gradients (krylovadv.torch.losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from krylovadv.torch import ce_loss, cw_loss, input_gradient, per_sample_loss
from krylovadv.torch._validation import (
    check_choice,
    check_images,
    check_labels,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _logits(batch=7, classes=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, classes, generator=gen, dtype=dtype) * 3
    y = torch.randint(0, classes, (batch,), generator=gen)
    return z, y


# -- cross-entropy -------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ce_equals_torch_cross_entropy(dtype):
    z, y = _logits(dtype=dtype)
    expected = F.cross_entropy(z, y, reduction="none")
    assert ce_loss(z, y).shape == (7,)
    torch.testing.assert_close(ce_loss(z, y), expected, rtol=0, atol=0)
    torch.testing.assert_close(per_sample_loss(z, y, "ce"), expected, rtol=0, atol=0)


# -- Carlini-Wagner margin -------------------------------------------------------
def test_cw_hand_computed():
    z = torch.tensor(
        [
            [1.0, 3.0, 2.0],  # correct class 0 loses by 2: margin +2
            [5.0, 0.0, 1.0],  # correct with margin 4: -4
            [0.0, 0.0, 100.0],  # wrong by 100: saturates at kappa
            [2.0, 2.0, -1.0],
        ],  # tie between true and best other: 0
        dtype=torch.float64,
    )
    y = torch.tensor([0, 0, 0, 1])
    torch.testing.assert_close(
        cw_loss(z, y), torch.tensor([2.0, -4.0, 50.0, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        cw_loss(z, y, kappa=10.0)[2], torch.tensor(10.0, dtype=torch.float64)
    )
    torch.testing.assert_close(
        cw_loss(z, y, kappa=math.inf)[2], torch.tensor(100.0, dtype=torch.float64)
    )
    # kappa = 0: an attack stops as soon as the sample is misclassified.
    torch.testing.assert_close(
        cw_loss(z, y, kappa=0.0), torch.tensor([0.0, -4.0, 0.0, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(per_sample_loss(z, y, "cw", kappa=0.0), cw_loss(z, y, kappa=0.0))


def test_cw_gradient_goes_to_true_and_best_other_class():
    z = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, 100.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0])
    (grad,) = torch.autograd.grad(cw_loss(z, y).sum(), z)
    expected = torch.tensor([[-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(grad, expected)  # sample 1 saturated: no gradient


@given(seed=st.integers(0, 10_000), classes=st.integers(2, 6))
def test_cw_is_positive_exactly_when_misclassified(seed, classes):
    z, y = _logits(batch=5, classes=classes, seed=seed)
    loss = cw_loss(z, y, kappa=math.inf)
    wrong = z.argmax(dim=1) != y
    assert torch.equal(loss > 0, wrong)
    # It is the negative of Carlini-Wagner's f6 = max(z_y - max_{j != y} z_j, -kappa).
    kappa = 1.5
    others = z.clone()
    others[torch.arange(5), y] = -math.inf
    f6 = torch.clamp(z[torch.arange(5), y] - others.max(dim=1).values, min=-kappa)
    torch.testing.assert_close(cw_loss(z, y, kappa=kappa), -f6)


def test_cw_needs_two_classes_and_valid_kappa():
    z, y = _logits(classes=1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        cw_loss(z, y)
    z, y = _logits()
    with pytest.raises(ValueError, match="kappa"):
        cw_loss(z, y, kappa=-1.0)
    with pytest.raises(ValueError, match="kappa"):
        cw_loss(z, y, kappa=float("nan"))


# -- dispatch and label checks ---------------------------------------------------
def test_unknown_loss_lists_valid_names():
    z, y = _logits()
    with pytest.raises(ValueError, match=r"'ce', 'cw'"):
        per_sample_loss(z, y, "hinge")


def test_callable_loss():
    z, y = _logits()
    torch.testing.assert_close(
        per_sample_loss(z, y, lambda a, b: ce_loss(a, b) * 2), 2 * ce_loss(z, y)
    )
    with pytest.raises(ValueError, match="one value per sample"):
        per_sample_loss(z, y, lambda a, b: ce_loss(a, b).mean())


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_bad_labels_are_rejected_before_the_kernel(loss):
    z, y = _logits(classes=5)
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        per_sample_loss(z, torch.full_like(y, 5), loss)
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        per_sample_loss(z, torch.full_like(y, -1), loss)
    with pytest.raises(TypeError, match="integers"):
        per_sample_loss(z, y.double(), loss)
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        per_sample_loss(z, y[:3], loss)
    with pytest.raises(ValueError, match=r"shape \(B, K\)"):
        per_sample_loss(z[0], y, loss)


# -- input gradient ----------------------------------------------------------------
@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_input_gradient_of_a_linear_model_is_closed_form(loss):
    torch.manual_seed(0)
    model = nn.Linear(6, 4).double()
    x = torch.rand(5, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    values, grad = input_gradient(model, x, y, loss=loss)
    W = model.weight.detach()
    z = model(x).detach()
    if loss == "ce":
        p = torch.softmax(z, dim=1)
        expected = (p - F.one_hot(y, 4).double()) @ W
    else:
        others = z.clone()
        others[torch.arange(5), y] = -math.inf
        j = others.argmax(dim=1)
        expected = W[j] - W[y]
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(values, per_sample_loss(z, y, loss))


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_input_gradient_is_per_sample(problem, loss):
    """Each row equals the gradient of that sample alone (the sum, never the mean)."""
    values, grad = input_gradient(problem.model, problem.x, problem.y, loss=loss)
    assert grad.shape == problem.x.shape and values.shape == (problem.x.shape[0],)
    for i in range(problem.x.shape[0]):
        v_i, g_i = input_gradient(
            problem.model, problem.x[i : i + 1], problem.y[i : i + 1], loss=loss
        )
        torch.testing.assert_close(g_i[0], grad[i], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(v_i[0], values[i], rtol=1e-12, atol=1e-15)
    # A reversed batch gives the reversed rows.
    _, grad_rev = input_gradient(problem.model, problem.x.flip(0), problem.y.flip(0), loss=loss)
    torch.testing.assert_close(grad_rev.flip(0), grad, rtol=1e-12, atol=1e-15)


def test_input_gradient_leaves_no_trace(relu_problem):
    model, x, y = relu_problem.model, relu_problem.x, relu_problem.y
    x_before = x.clone()
    with torch.no_grad():  # works inside no_grad, as attack loops often are
        values, grad = input_gradient(model, x, y)
    assert not values.requires_grad and not grad.requires_grad
    assert torch.equal(x, x_before) and not x.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert grad.abs().sum() > 0


def test_input_gradient_create_graph_reaches_x(softplus_problem):
    model, y = softplus_problem.model, softplus_problem.y
    x = softplus_problem.x.clone().requires_grad_(True)
    _, grad = input_gradient(model, x, y, create_graph=True)
    v = torch.randn_like(x)
    (hv,) = torch.autograd.grad(grad, x, grad_outputs=v)
    for i in range(2):
        H_i = torch.autograd.functional.hessian(
            lambda xi, i=i: ce_loss(model(xi[None]), y[i : i + 1]).sum(), x[i].detach()
        )
        torch.testing.assert_close(hv[i], H_i @ v[i])
    assert all(p.grad is None for p in model.parameters())


def test_input_gradient_of_a_constant_loss_is_zero():
    x = torch.rand(3, 4, dtype=torch.float64)
    values, grad = input_gradient(
        lambda t: torch.zeros(t.shape[0], 2, dtype=t.dtype), x, torch.zeros(3, dtype=torch.int64)
    )
    assert torch.equal(grad, torch.zeros_like(x))
    torch.testing.assert_close(values, torch.full((3,), math.log(2), dtype=torch.float64))


def test_input_gradient_rejects_training_batchnorm(bn_model):
    x = torch.rand(4, 1, 6, 6, dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"BatchNorm2d module '1'.*model\.eval\(\)"):
        input_gradient(bn_model, x, y)
    assert bn_model[1].training
    _, grad = input_gradient(bn_model, x, y, check_model=False)  # explicitly allowed
    assert grad.shape == x.shape


def test_input_gradient_input_errors(relu_problem):
    model, x, y = relu_problem.model, relu_problem.x, relu_problem.y
    with pytest.raises(TypeError, match=r"model\.double\(\)|model's parameters"):
        input_gradient(model, x.float(), y)
    with pytest.raises(TypeError, match="float32 or float64"):
        input_gradient(model, (x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match="NaN or Inf in sample"):
        bad = x.clone()
        bad[2, 0, 0, 0] = float("nan")
        input_gradient(model, bad, y)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        input_gradient(model, x, y[:2])


# -- shared validation helpers -------------------------------------------------------
def test_check_images():
    x = torch.rand(2, 3, dtype=torch.float64)
    assert check_images(x) is x
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*inside the model"):
        check_images(x + 1.5)
    check_images(x + 1.5, value_range=None)
    with pytest.raises(ValueError, match="unsqueeze"):
        check_images(torch.rand(3))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        check_images(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="adv"):
        check_images(torch.full((2, 3), float("inf")), name="adv")


def test_check_labels_and_scalars():
    y = check_labels(torch.tensor([0, 2], dtype=torch.int32), 2, num_classes=3)
    assert y.dtype == torch.int64
    with pytest.raises(TypeError, match="int64"):
        check_labels([0, 1], 2)
    with pytest.raises(TypeError, match="integers"):
        check_labels(torch.tensor([True, False]), 2)
    assert check_nonnegative(0, "eps") == 0.0
    assert check_nonnegative(torch.tensor(0.3), "eps") == pytest.approx(0.3)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        check_nonnegative(-0.1, "eps")
    with pytest.raises(ValueError, match="eps"):
        check_nonnegative(math.inf, "eps")
    with pytest.raises(TypeError, match="eps"):
        check_nonnegative("0.3", "eps")
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        check_positive(0.0, "alpha")
    assert check_positive_int(3, "steps") == 3
    with pytest.raises(ValueError, match="steps must be >= 1"):
        check_positive_int(0, "steps")
    with pytest.raises(TypeError, match="steps must be an int"):
        check_positive_int(2.0, "steps")
    with pytest.raises(ValueError, match="'l2', 'linf'"):
        check_choice("l1", "norm", ("l2", "linf"))
