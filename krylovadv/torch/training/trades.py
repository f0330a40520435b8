r"""TRADES (Zhang et al.): the per-sample KL, its inner maximization and the outer loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.base import eval_mode

__all__ = ["trades_kl", "trades_loss", "trades_perturb"]


def trades_kl(logits_natural: torch.Tensor, logits_adversarial: torch.Tensor) -> torch.Tensor:
    r"""Per-sample :math:`\operatorname{KL}(f(x_b)\,\|\,f(x'_b))` of TRADES.

    .. math:: \operatorname{KL}_b = \sum_k p_{bk}\bigl(\log p_{bk} - \log q_{bk}\bigr),
              \qquad p_b = \operatorname{softmax} f(x_b),\ q_b = \operatorname{softmax} f(x'_b),

    the value of the reference code's ``nn.KLDivLoss(size_average=False)(
    log_softmax(f(x')), softmax(f(x)))`` per sample, differentiable in both
    arguments.

    Parameters
    ----------
    logits_natural : torch.Tensor, shape (B, K)
        :math:`f(x)`.
    logits_adversarial : torch.Tensor, shape (B, K)
        :math:`f(x')`.

    Returns
    -------
    torch.Tensor, shape (B,)
    """
    log_p = F.log_softmax(logits_natural, dim=1)
    log_q = F.log_softmax(logits_adversarial, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def trades_perturb(
    model: nn.Module,
    x: torch.Tensor,
    *,
    eps: float,
    steps: int,
    alpha: float,
    norm: str = "linf",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""TRADES inner maximization, as in Zhang et al.'s reference code.

    Approximately solves :math:`\max_{x' \in B_p(x, \varepsilon)}
    \operatorname{KL}(f(x)\,\|\,f(x'))`.
    Start :math:`x'_0 = x + 0.001\,\xi`, :math:`\xi \sim \mathcal N(0, I)`; with
    :math:`g_t = \nabla_{x'}\sum_b \operatorname{KL}(f(x_b)\|f(x'_{t,b}))`:

    - :math:`\ell_\infty`: :math:`x'_{t+1} = \operatorname{clip}_{[0,1]}\bigl(
      \Pi_{\|x'-x\|_\infty \le \varepsilon}(x'_t + \alpha \operatorname{sign} g_t)\bigr)`;
    - :math:`\ell_2`: :math:`\delta_{t+1} = \delta_t + \alpha\, g_t/\|g_t\|_2`
      (a random direction where :math:`g_t = 0`), then :math:`x + \delta` is
      clipped to [0, 1] and :math:`\delta` renormed to :math:`\|\delta\|_2 \le
      \varepsilon` (the reference uses :math:`\alpha = 2\varepsilon/\text{steps}`).

    The model is in eval mode throughout (each submodule's mode restored
    afterwards); :math:`f(x)` is computed once, without gradient.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier.
    x : torch.Tensor, shape (B, ...)
        Natural inputs in [0, 1].
    eps : float
        Radius ε.
    steps : int
        Number of ascent steps.
    alpha : float
        Step size.
    norm : {"linf", "l2"}
        Ball.
    generator : torch.Generator, optional
        Source of the start noise (and of the ℓ2 zero-gradient directions).

    Returns
    -------
    torch.Tensor
        :math:`x'`, detached, in [0, 1] and the ε-ball.
    """
    x = x.detach()
    batch = x.shape[0]
    noise = 0.001 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    with eval_mode(model), torch.enable_grad():
        with torch.no_grad():
            p_logits = model(x)
        if norm == "linf":
            x_adv = x + noise
            for _ in range(steps):
                x_adv = x_adv.detach().requires_grad_(True)
                loss = trades_kl(p_logits, model(x_adv)).sum()
                (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = x_adv.detach() + alpha * grad.sign()
                x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
            return x_adv.detach().clamp(0.0, 1.0)
        delta = noise
        for _ in range(steps):
            delta = delta.detach().requires_grad_(True)
            loss = trades_kl(p_logits, model(x + delta)).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            norms = grad.reshape(batch, -1).norm(dim=1)
            zero = norms == 0
            if bool(zero.any()):  # reference: a random direction where g = 0
                grad[zero] = torch.randn(
                    grad[zero].shape, generator=generator, device=x.device, dtype=x.dtype
                )
                norms = grad.reshape(batch, -1).norm(dim=1)
            delta = delta.detach() + alpha * grad / norms.view(-1, *([1] * (x.ndim - 1)))
            delta = (x + delta).clamp(0.0, 1.0) - x
            delta = delta.renorm(p=2, dim=0, maxnorm=eps)
    return (x + delta).detach().clamp(0.0, 1.0)


def trades_loss(
    logits_natural: torch.Tensor, logits_adversarial: torch.Tensor, y: torch.Tensor, beta: float
) -> torch.Tensor:
    r"""TRADES outer loss, reduced as in the reference code.

    .. math:: \frac1B\sum_b \operatorname{CE}(f(x_b), y_b)
              + \beta\,\frac1B\sum_b \operatorname{KL}(f(x_b)\,\|\,f(x'_b)),

    i.e. the KL term is the per-sample *sum* over classes divided by the batch
    size (``KLDivLoss(size_average=False) / B``, PyTorch's ``"batchmean"``),
    not the mean over :math:`B \times K` entries.

    Parameters
    ----------
    logits_natural, logits_adversarial : torch.Tensor, shape (B, K)
        :math:`f(x)`, :math:`f(x')`, both with gradient.
    y : torch.Tensor, shape (B,)
        Labels.
    beta : float
        :math:`\beta`.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    batch = logits_natural.shape[0]
    robust = trades_kl(logits_natural, logits_adversarial).sum() / batch
    return F.cross_entropy(logits_natural, y) + beta * robust


# --- methods ---------------------------------------------------------------------
