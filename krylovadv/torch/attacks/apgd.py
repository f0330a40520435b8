r"""Auto-PGD (Croce & Hein, ICML 2020): PGD with momentum and a budget-aware step size.

APGD (Algorithm 1 of "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks") replaces PGD's fixed step by a
per-sample step size :math:`\eta` that starts at :math:`2\varepsilon` and is
halved at checkpoints when progress stalls, and adds heavy-ball momentum:

.. math::
    z^{k+1} &= \Pi_{\mathcal S}\bigl(x^k + \eta^k\,u(\nabla_x L(x^k))\bigr), \\
    x^{k+1} &= \Pi_{\mathcal S}\bigl(x^k + \alpha (z^{k+1} - x^k)
               + (1 - \alpha)(x^k - x^{k-1})\bigr),

with :math:`\alpha = 0.75` (the first step, :math:`k = 0`, has no momentum).
The checkpoints are :math:`w_j = \lceil p_j N \rceil` with :math:`p_0 = 0`,
:math:`p_1 = 0.22`, :math:`p_{j+1} = p_j + \max(p_j - p_{j-1} - 0.03, 0.06)`
(:func:`checkpoints`).  At a checkpoint :math:`w_j` a sample halves its step
and restarts from its best point so far if

1. fewer than a fraction :math:`\rho = 0.75` of the steps since
   :math:`w_{j-1}` increased its loss, or
2. its step was not halved at :math:`w_{j-1}` and its best loss has not
   improved since :math:`w_{j-1}`.

Everything (step size, counters, best point) is per sample.  This module is
written from the paper's description; it is not a port of the AutoAttack code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_nonnegative
from .base import Attack, StepState, _keep_better, _Records, _Run
from .norms import Norm

__all__ = ["APGD", "APGDT", "checkpoints", "dlr_loss", "dlr_targeted_loss"]


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Difference-of-logits-ratio loss of Croce & Hein (2020), eq. 5 (maximised).

    .. math::
        \mathrm{DLR}(z, y) = -\frac{z_y - \max_{i \ne y} z_i}{z_{\pi_1} - z_{\pi_3}},

    with :math:`z_{\pi_1} \ge z_{\pi_2} \ge \dots` the sorted logits.  It is
    invariant to shifting and to positive rescaling of the logits, so a model
    cannot hide behind saturated or huge logits as it can from cross-entropy.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, K)
        Class scores, :math:`K \ge 3`.
    y : torch.Tensor, shape (B,)
        Labels.

    Returns
    -------
    torch.Tensor, shape (B,)
    """
    if logits.ndim != 2 or logits.shape[1] < 3:
        raise ValueError(f"DLR needs logits (B, K) with K >= 3 classes; got {tuple(logits.shape)}.")
    top, _ = logits.sort(dim=1, descending=True)
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    # 1e-12 keeps the ratio finite for constant logits (then the numerator is 0 too).
    return -(true - other) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Targeted DLR loss of Croce & Hein (2020) (maximised: pushes ``target`` above ``y``).

    .. math::
        \mathrm{DLR}_t(z, y) = -\frac{z_y - z_t}{z_{\pi_1} - (z_{\pi_3} + z_{\pi_4})/2}.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, K)
        Class scores, :math:`K \ge 4`.
    y, target : torch.Tensor, shape (B,)
        Labels and target classes (``target != y``).

    Returns
    -------
    torch.Tensor, shape (B,)
    """
    if logits.ndim != 2 or logits.shape[1] < 4:
        raise ValueError(
            f"targeted DLR needs logits (B, K) with K >= 4 classes; got {tuple(logits.shape)}."
        )
    top, _ = logits.sort(dim=1, descending=True)
    true = logits.gather(1, y[:, None])[:, 0]
    tgt = logits.gather(1, target[:, None])[:, 0]
    return -(true - tgt) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def checkpoints(steps: int) -> list[int]:
    r"""APGD's checkpoints :math:`w_j = \lceil p_j N \rceil \le N`, increasing, without repeats.

    Computed in exact rational arithmetic, so that e.g. :math:`p_2 N = 0.41
    \cdot 100` gives 41, not 42.

    Parameters
    ----------
    steps : int
        :math:`N`, the number of iterations.

    Returns
    -------
    list of int
        Starting with :math:`w_0 = 0`.

    Examples
    --------
    >>> checkpoints(100)
    [0, 22, 41, 57, 70, 80, 87, 93, 99]
    """
    p_prev, p = Fraction(0), Fraction(22, 100)
    points = [0]
    while p <= 1:
        w = math.ceil(p * steps)
        if w > points[-1]:
            points.append(w)
        p_prev, p = p, p + max(p - p_prev - Fraction(3, 100), Fraction(6, 100))
    return points


class APGD(Attack):
    r"""APGD (Croce & Hein, ICML 2020): momentum PGD with a per-sample, self-halving step.

    From the paper 'Reliable evaluation of adversarial robustness with an
    ensemble of diverse parameter-free attacks'.

    [https://arxiv.org/abs/2003.01690]

    Distance Measure : Linf or L2

    Shape : ``x`` :math:`(B, C, H, W)` (any ``(B, ...)``) in [0, 1], float32 or float64;
    ``y`` :math:`(B,)` integer labels; output: same as ``x``.

    See the module docstring for the update and the step-size rule.  ``steps``
    is :math:`N_{iter}`: one gradient per iteration, the same budget as
    :class:`~krylovadv.torch.attacks.PGD` with as many steps.  On a restart
    from the best point the momentum is reset (:math:`x^{k} = x^{k+1} =
    x_{max}`).  The returned point of a sample is, among its iterates, a
    misclassified one if there is any (the one of highest loss), else the one
    of highest loss; restarts (``restarts > 1``) keep each sample's worst case
    as for every attack.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits for inputs in [0, 1].
    norm : {"linf", "l2"} or Norm
        Threat model.  (Default: ``"linf"``)
    eps : float
        Radius ε of the ball.
    steps : int
        Iterations :math:`N_{iter}`.  (Default: 100)
    loss : {"ce", "cw", "dlr"}
        Cross-entropy (APGD-CE), the CW margin loss, or the difference of
        logits ratio (APGD-DLR, :func:`dlr_loss`).  (Default: ``"ce"``)
    kappa : float
        CW margin.  (Default: 50)
    random_start : bool
        Start from a random point of the ball.  (Default: True)
    restarts : int
        Independent runs, keeping each sample's worst case.  (Default: 1)
    early_stop : bool
        Stop updating misclassified samples.  (Default: False)
    seed : int, optional
        Seed of the random start.  (Default: ``None``, i.e. ``DEFAULT_SEED`` = 0)
    momentum : float
        :math:`\alpha` in [0, 1].  (Default: 0.75)
    rho : float
        :math:`\rho` of condition 1, in [0, 1].  (Default: 0.75)

    Notes
    -----
    :meth:`run` reports the per-step, per-sample step size :math:`\eta^k` as
    ``diagnostics["step_size"]`` (shape ``(steps, B)``) and whether the sample
    was halved and restarted at step :math:`k` as ``diagnostics["restarted"]``.

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import APGD
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
    >>> x_adv = APGD(model, eps=8 / 255, steps=10)(x, y)
    >>> bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
    True
    """

    name = "APGD"

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        norm: str | Norm = "linf",
        eps: float,
        steps: int = 100,
        loss: str = "ce",
        kappa: float = 50.0,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = False,
        seed: int | None = None,
        momentum: float = 0.75,
        rho: float = 0.75,
    ) -> None:
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "callable")
        super().__init__(
            model,
            norm=norm,
            eps=eps,
            steps=steps,
            alpha=None,
            loss=dlr_loss if loss == "dlr" else loss,
            kappa=kappa,
            random_start=random_start,
            restarts=restarts,
            early_stop=early_stop,
            seed=seed,
        )
        self.alpha = 2.0 * self.eps  # η⁽⁰⁾ = 2ε
        self.momentum = _check_unit(momentum, "momentum")
        self.rho = _check_unit(rho, "rho")

    def direction(
        self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r""":math:`\nabla_x L(x^k, y)` (APGD runs its own loop; see :meth:`_attack_once`)."""
        return state.gradient

    def _objective(
        self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        """Per-sample loss maximised by the run: the attack's loss, or targeted DLR."""
        if target is None:
            return self.per_sample_loss(logits, y)
        return dlr_targeted_loss(logits, y, target)

    def _objective_and_gradient(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, :meth:`_objective` and its input gradient at ``x``."""
        if target is None:
            return self.loss_and_gradient(x, y)
        with torch.enable_grad():
            x_req = x.detach().requires_grad_(True)
            logits = self.model(x_req)
            loss = dlr_targeted_loss(logits, y, target)
            (grad,) = torch.autograd.grad(loss.sum(), x_req)
        return logits.detach(), loss.detach(), grad

    def _attack_once(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        *,
        trace: bool,
        evaluate: bool,
    ) -> _Run:
        """One APGD run (Algorithm 1) on the samples ``x``."""
        return self._apgd(x, y, generator, trace=trace, evaluate=evaluate, target=None)

    def _apgd(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        *,
        trace: bool,
        evaluate: bool,
        target: torch.Tensor | None,
    ) -> _Run:
        """One APGD run on ``x``, maximising :meth:`_objective` (targeted if ``target``)."""
        B, N = int(x.shape[0]), self.steps
        dev, dtype = x.device, x.dtype
        shape = (-1,) + (1,) * (x.ndim - 1)
        x_cur = self.norm.random_start(x, self.eps, generator) if self.random_start else x.clone()
        logits, f_cur, grad = self._objective_and_gradient(x_cur, y, target)
        succ_cur = logits.argmax(dim=1) != y
        x_prev = x_cur.clone()
        # The algorithm's best point (highest loss) and the returned point
        # (misclassified first, then highest loss).
        x_max, f_max, g_max, l_max = x_cur.clone(), f_cur.clone(), grad.clone(), logits.clone()
        x_out, f_out, s_out = x_cur.clone(), f_cur.clone(), succ_cur.clone()
        eta = torch.full((B,), 2.0 * self.eps, device=dev, dtype=dtype)
        increases = torch.zeros(B, device=dev, dtype=torch.long)
        f_max_last = f_max.clone()
        halved_last = torch.zeros(B, device=dev, dtype=torch.bool)
        marks = checkpoints(N)
        window = {w: w - marks[j - 1] for j, w in enumerate(marks) if j > 0 and w < N}

        records = _Records(N, B, trace)
        step_size = np.full((N, B), np.nan)
        restarted = np.full((N, B), np.nan)
        active = torch.ones(B, device=dev, dtype=torch.bool)
        for k in self._steps(N):
            idx = torch.nonzero(active).flatten()
            if trace:
                # Row k holds x^k of every sample still attacked, including one that early
                # stop freezes here: the trace carries a frozen sample's last iterate forward.
                idx_np = idx.cpu().numpy()
                state = StepState(self, x_cur[idx], y[idx], k, generator, idx_np)
                state._logits, state._loss, state._grad = logits[idx], f_cur[idx], grad[idx]
                records.point(k, state, gradient=True)
            if self.early_stop:
                active &= ~succ_cur
                idx = torch.nonzero(active).flatten()
            if idx.numel() == 0:
                break
            idx_np = idx.cpu().numpy()
            step_size[k, idx_np] = eta[idx].double().cpu().numpy()

            xc, xp, xo, g = x_cur[idx], x_prev[idx], x[idx], grad[idx]
            z = self.norm.project(xc + eta[idx].view(shape) * self.norm.normalize(g), xo, self.eps)
            if k == 0:
                x_new = z
            else:
                a = self.momentum
                x_new = self.norm.project(xc + a * (z - xc) + (1 - a) * (xc - xp), xo, self.eps)
            x_new = x_new.to(dtype)
            t_idx = None if target is None else target[idx]
            if k + 1 < N:
                lg, f_new, g_new = self._objective_and_gradient(x_new, y[idx], t_idx)
            else:
                with torch.no_grad():
                    lg = self.model(x_new)
                f_new = self._objective(lg, y[idx], t_idx).detach()
                g_new = torch.zeros_like(x_new)
            s_new = lg.argmax(dim=1) != y[idx]

            # Bookkeeping of step k (its comparison f(x^{k+1}) > f(x^k) counts towards
            # the window that starts at the checkpoint k, if k is one).
            inc = f_new > f_cur[idx]
            better = f_new > f_max[idx]
            bi = idx[better]
            x_max[bi], f_max[bi], g_max[bi] = x_new[better], f_new[better], g_new[better]
            l_max[bi] = lg[better]
            out = (s_new & ~s_out[idx]) | ((s_new == s_out[idx]) & (f_new > f_out[idx]))
            oi = idx[out]
            x_out[oi], f_out[oi], s_out[oi] = x_new[out], f_new[out], s_new[out]
            x_prev[idx], x_cur[idx] = xc, x_new
            f_cur[idx], grad[idx], succ_cur[idx], logits[idx] = f_new, g_new, s_new, lg
            restarted[k, idx_np] = 0.0

            if k in window:
                cond1 = increases[idx].double() < self.rho * window[k]
                cond2 = ~halved_last[idx] & (f_max[idx] <= f_max_last[idx])
                halve = cond1 | cond2
                hi = idx[halve]
                eta[hi] = eta[hi] / 2
                x_cur[hi], x_prev[hi] = x_max[hi], x_max[hi]
                f_cur[hi], grad[hi], logits[hi] = f_max[hi], g_max[hi], l_max[hi]
                succ_cur[hi] = l_max[hi].argmax(dim=1) != y[hi]
                halved_last[idx] = halve
                f_max_last[idx] = f_max[idx]
                increases[idx] = 0
                restarted[k, idx_np] = halve.double().cpu().numpy()
            increases[idx] += inc.long()

        loss = success = None
        if evaluate:
            final = StepState(self, x_out, y, N, generator, np.arange(B))
            records.point(N, final, gradient=trace)
            loss, success = final.loss, final.success
        records.diag = {"step_size": step_size, "restarted": restarted}
        return _Run(
            x_adv=x_out, loss=loss, success=success, trace=records.trace(), diagnostics=records.diag
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(norm={self.norm.name!r}, eps={self.eps:g}, "
            f"steps={self.steps}, loss={self.loss_name!r}, momentum={self.momentum:g}, "
            f"rho={self.rho:g}, random_start={self.random_start}, restarts={self.restarts})"
        )


class APGDT(APGD):
    r"""Targeted APGD on the DLR loss over the top classes (APGD-T of Croce & Hein, 2020).

    For every sample, the classes other than its label are ranked by the clean
    logits; for :math:`j = 1, \dots,` ``n_target_classes`` an APGD run
    maximises :func:`dlr_targeted_loss` towards the :math:`j`-th ranked class,
    only on the samples that no earlier target has misclassified.  Each sample
    keeps its first misclassified point (else the point of highest untargeted
    DLR loss).  The cost is up to ``n_target_classes * steps`` gradients per
    sample (``restarts`` repeats the whole sweep).

    Distance Measure : Linf or L2

    Parameters
    ----------
    model, norm, eps, steps, random_start, restarts, early_stop, seed, momentum, rho
        As in :class:`APGD`.
    n_target_classes : int
        How many of the top-ranked wrong classes to target, :math:`1 \le n \le K - 1`.
        (Default: 9, AutoAttack's standard setting for 10 classes)

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import APGDT
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 5))
    >>> x, y = torch.rand(3, 1, 2, 2), torch.tensor([0, 2, 4])
    >>> x_adv = APGDT(model, eps=0.1, steps=5, n_target_classes=2)(x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
    """

    name = "APGD-T"

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        norm: str | Norm = "linf",
        eps: float,
        steps: int = 100,
        n_target_classes: int = 9,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = False,
        seed: int | None = None,
        momentum: float = 0.75,
        rho: float = 0.75,
    ) -> None:
        super().__init__(
            model,
            norm=norm,
            eps=eps,
            steps=steps,
            loss="dlr",
            random_start=random_start,
            restarts=restarts,
            early_stop=early_stop,
            seed=seed,
            momentum=momentum,
            rho=rho,
        )
        if isinstance(n_target_classes, bool) or not isinstance(n_target_classes, int):
            raise TypeError(f"n_target_classes must be an int; got {n_target_classes!r}.")
        if n_target_classes < 1:
            raise ValueError(f"n_target_classes must be >= 1; got {n_target_classes}.")
        self.n_target_classes = n_target_classes

    def _attack_once(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        *,
        trace: bool,
        evaluate: bool,
    ) -> _Run:
        """One sweep over the target classes, each only on the still-robust samples."""
        with torch.no_grad():
            logits = self.model(x)
        classes = logits.shape[1]
        if self.n_target_classes > classes - 1:
            raise ValueError(
                f"n_target_classes={self.n_target_classes} exceeds the {classes - 1} wrong "
                f"classes of this model; use at most {classes - 1}."
            )
        ranked = logits.masked_fill(F.one_hot(y, classes).bool(), float("-inf"))
        ranked = ranked.argsort(dim=1, descending=True)
        best = self._apgd(x, y, generator, trace=trace, evaluate=True, target=ranked[:, 0])
        for j in range(1, self.n_target_classes):
            todo = ~best.success
            if not bool(todo.any()):
                break
            run = self._apgd(
                x[todo], y[todo], generator, trace=trace, evaluate=True, target=ranked[todo, j]
            )
            _keep_better(best, run, todo)
        return best

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(norm={self.norm.name!r}, eps={self.eps:g}, "
            f"steps={self.steps}, n_target_classes={self.n_target_classes}, "
            f"random_start={self.random_start}, restarts={self.restarts})"
        )


def _check_unit(value: float, name: str) -> float:
    value = check_nonnegative(value, name)
    if value > 1:
        raise ValueError(f"{name} must be in [0, 1]; got {value!r}.")
    return value
