r"""Per-sample losses of a classifier and their input gradients.

Everything here is *per sample*: a loss returns one value :math:`\ell_b` per
sample, and :func:`input_gradient` differentiates the **sum**
:math:`\sum_b \ell_b`, never the mean.  With the model in eval mode the samples
do not interact, so

.. math::
    \nabla_{x_b} \sum_{c} \ell\big(f(x_c), y_c\big)
    = \nabla_{x_b}\, \ell\big(f(x_b), y_b\big),

i.e. each sample's gradient (and Hessian, step sizes, tolerances) is the one it
would have alone, whatever the batch size.  A mean would scale every gradient
by :math:`1/B`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._validation import (
    check_images,
    check_labels,
    check_model_decoupled,
    check_model_input,
    check_nonnegative,
)

__all__ = ["LOSSES", "ce_loss", "cw_loss", "input_gradient", "per_sample_loss"]

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_logits(logits: Any, y: Any, *, min_classes: int = 1) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"logits must be a tensor of shape (B, K); got {shape}. Does the model "
            "return one row of class scores per sample?"
        )
    if logits.shape[1] < min_classes:
        raise ValueError(
            f"this loss needs at least {min_classes} classes; logits have shape "
            f"{tuple(logits.shape)}."
        )
    # Labels are checked on the host: an out-of-range label would otherwise be a
    # device-side assert on CUDA.  (Only y's values are inspected, never the logits',
    # so this also works inside torch.func transforms.)
    return check_labels(
        y, int(logits.shape[0]), "y", num_classes=int(logits.shape[1]), device=logits.device
    )


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Per-sample cross-entropy :math:`\ell_b = -\log \operatorname{softmax}(z_b)_{y_b}`.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, K)
        Class scores :math:`z_b = f(x_b)`.
    y : torch.Tensor, shape (B,)
        Integer labels in :math:`[0, K)`.

    Returns
    -------
    torch.Tensor, shape (B,)
        :math:`\ell_b = \log\sum_j e^{z_{bj}} - z_{b y_b}`, i.e.
        ``torch.nn.functional.cross_entropy(logits, y, reduction="none")``.
    """
    y = _check_logits(logits, y)
    return F.cross_entropy(logits, y, reduction="none")


def cw_loss(logits: torch.Tensor, y: torch.Tensor, kappa: float = 50.0) -> torch.Tensor:
    r"""Per-sample Carlini-Wagner margin loss, to be **maximised** by an untargeted attack.

    .. math::
        \ell_b = \min\Big(\max_{j \ne y_b} z_{bj} - z_{b y_b},\ \kappa\Big)
               = -\max\Big(z_{b y_b} - \max_{j \ne y_b} z_{bj},\ -\kappa\Big),

    the negative of Carlini & Wagner's :math:`f_6` with confidence
    :math:`\kappa` (which their attack minimises).  Larger is more adversarial:
    :math:`\ell_b < 0` while sample :math:`b` is classified correctly,
    :math:`\ell_b > 0` once it is misclassified, and the loss saturates at
    :math:`\kappa` when the best wrong class leads by :math:`\kappa`, so an
    attack stops pushing samples that are already confidently wrong.  Li et
    al. use :math:`\kappa = 50` for their :math:`\ell_2` attack.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, K)
        Class scores :math:`z_b = f(x_b)`, :math:`K \ge 2`.
    y : torch.Tensor, shape (B,)
        Integer labels in :math:`[0, K)`.
    kappa : float
        Confidence :math:`\kappa \ge 0` (``float("inf")``: no saturation, the
        plain margin).

    Returns
    -------
    torch.Tensor, shape (B,)
        :math:`\ell_b`.

    Notes
    -----
    The margin is piecewise linear in the logits; its gradient goes to the
    best wrong class (split evenly on exact ties) and is zero where the
    saturation at :math:`\kappa` is active.
    """
    kappa = check_nonnegative(kappa, "kappa", allow_inf=True)
    y = _check_logits(logits, y, min_classes=2)
    true_logit = logits.gather(1, y[:, None])[:, 0]
    is_true = F.one_hot(y, logits.shape[1]).bool()
    best_other = logits.masked_fill(is_true, float("-inf")).amax(dim=1)
    return torch.clamp(best_other - true_logit, max=kappa)


#: The built-in losses by name.
LOSSES: dict[str, Callable[..., torch.Tensor]] = {"ce": ce_loss, "cw": cw_loss}


def per_sample_loss(
    logits: torch.Tensor, y: torch.Tensor, loss: str | LossFunction = "ce", kappa: float = 50.0
) -> torch.Tensor:
    r"""Evaluate the per-sample loss :math:`\ell_b = \ell(z_b, y_b)` named ``loss``.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, K)
        Class scores :math:`z_b = f(x_b)`.
    y : torch.Tensor, shape (B,)
        Integer labels.
    loss : {"ce", "cw"} or callable
        ``"ce"``: :func:`ce_loss`; ``"cw"``: :func:`cw_loss` with ``kappa``.  A
        callable ``loss(logits, y)`` must return shape ``(B,)`` and treat the
        samples independently.
    kappa : float
        Confidence of the CW loss (ignored otherwise).

    Returns
    -------
    torch.Tensor, shape (B,)
        :math:`\ell_b`.

    Raises
    ------
    ValueError
        For an unknown loss name (listing the valid ones) or a callable that
        does not return one value per sample.
    """
    if callable(loss):
        values = loss(logits, y)
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != (logits.shape[0],):
            shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values)
            raise ValueError(
                f"the loss callable must return shape ({logits.shape[0]},), one "
                f"value per sample (reduction='none'); got {shape}."
            )
        return values
    if loss == "ce":
        return ce_loss(logits, y)
    if loss == "cw":
        return cw_loss(logits, y, kappa=kappa)
    valid = ", ".join(repr(name) for name in LOSSES)
    raise ValueError(f"loss must be one of {valid} (or a callable); got {loss!r}.")


def input_gradient(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str | LossFunction = "ce",
    kappa: float = 50.0,
    create_graph: bool = False,
    check_model: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-sample losses and their input gradients :math:`g_b = \nabla_{x_b}\ell(f(x_b), y_b)`.

    Differentiates :math:`\sum_b \ell_b` (never the mean) with
    ``torch.autograd.grad`` with respect to ``x`` only, so each row of the
    gradient is that sample's own gradient, independent of the batch, and no
    ``.grad`` is accumulated on the model's parameters.

    Parameters
    ----------
    model : callable
        Maps inputs ``(B, ...)`` to logits ``(B, K)``; in eval mode.
    x : torch.Tensor, shape (B, ...)
        Inputs, float32 or float64 (not modified; any value range).
    y : torch.Tensor, shape (B,)
        Integer labels.
    loss : {"ce", "cw"} or callable
        See :func:`per_sample_loss`.
    kappa : float
        Confidence :math:`\kappa` of the CW loss.
    create_graph : bool
        Keep the graph of the gradient for a second differentiation (as
        ``torch.autograd.grad``).  If ``x.requires_grad``, the graph then reaches
        ``x`` itself (differentiate ``grad`` with respect to ``x`` or anything
        upstream of it); otherwise it starts at a detached copy of ``x`` and
        reaches only the model's parameters.
    check_model : bool
        Run :func:`~krylovadv.torch._validation.check_model_decoupled` (a
        BatchNorm in training mode would couple the samples).

    Returns
    -------
    loss_values : torch.Tensor, shape (B,)
        :math:`\ell_b` (detached unless ``create_graph``).
    grad : torch.Tensor, same shape as ``x``
        :math:`g_b` (detached unless ``create_graph``); zeros where the loss
        does not depend on ``x``.

    Raises
    ------
    ValueError
        On a BatchNorm in training mode, mismatched shapes or devices, or
        labels out of range.
    TypeError
        On wrong types or dtypes.
    """
    check_images(x, "x", value_range=None)
    y = check_labels(y, int(x.shape[0]), "y", device=x.device)
    if check_model:
        check_model_decoupled(model)
    check_model_input(model, x, "x")
    return _loss_and_gradient(model, x, y, loss=loss, kappa=kappa, create_graph=create_graph)


def _loss_and_gradient(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str | LossFunction,
    kappa: float,
    create_graph: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`input_gradient` without the checks (the hot path of FD products)."""
    leaf = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
    with torch.enable_grad():
        values = per_sample_loss(model(leaf), y, loss=loss, kappa=kappa)
        if not values.requires_grad:  # a loss that does not depend on x (or anything)
            grad = torch.zeros_like(leaf)
            return values.detach(), grad if create_graph else grad.detach()
        # autograd.grad w.r.t. x only: nothing accumulates in param.grad, and no
        # reference cycle as with backward(create_graph=True).
        (grad,) = torch.autograd.grad(
            values.sum(), leaf, create_graph=create_graph, allow_unused=True, materialize_grads=True
        )
    if not create_graph:
        values, grad = values.detach(), grad.detach()
    return values, grad
