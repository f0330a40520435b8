r"""The second-order (S-O) attack of Li et al. and its power-iteration variant.

Near a point where the loss is flat (:math:`\nabla_x L \approx 0`, what
adversarial training aims for), the loss grows as
:math:`\tfrac12 r^T H r`, fastest along the dominant eigenvector of the input
Hessian :math:`H`.  Li et al. reach for that direction in two ways:

- :class:`SO` (Sec. 4, eqs. 3–4): the gradient averaged over Gaussian noise,
  :math:`g = \mathbb E_{d \sim \mathcal N(0, \sigma^2 I)}[\nabla_x L(x + d)]`,
  a stochastic one-step power iteration with finite differences
  (:math:`\nabla L(x + \xi d) \approx \nabla L(x) + \xi H d`);
- :class:`SOPower` (appendix A): the power iteration
  :math:`d^{t+1} = H d^t / \|H d^t\|_2` itself, run here with
  :func:`krylovadv.power_iteration` on the exact (or finite-difference)
  :class:`~krylovadv.torch.hessian.InputHessian`.

Both then take PGD steps along the direction (eq. 4).

Default settings are the authors' MNIST settings (the public TensorFlow code of
Li et al., *On Norm-Agnostic Robustness of Adversarial Training*; see
docs/input-hessian.rst): 10 noise samples per step, :math:`\sigma = 0.7`, 20 steps, no random start;
:math:`\ell_\infty`: step :math:`\varepsilon/10` on cross-entropy;
:math:`\ell_2`: step :math:`2.5\,\varepsilon/T` on the CW margin loss with
:math:`\kappa = 50`.  The paper's budgets are :math:`\varepsilon = 0.3`
(:math:`\ell_\infty`) and :math:`4.0` (:math:`\ell_2`) on MNIST; for
CIFAR-10 the authors use :math:`\sigma = 100/255`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...power import PowerIterationResult, power_iteration
from ...status import SolverStatus
from .._validation import check_choice, check_nonnegative, check_positive, check_positive_int
from ..hessian import METHODS, InputHessian
from ..losses import LossFunction
from .base import Attack, StepState
from .norms import Norm, get_norm

__all__ = ["SO", "PowerDirection", "SOPower"]


def _so_defaults(
    norm: str | Norm, eps: float, steps: int, alpha: float | None, loss: str | LossFunction | None
) -> tuple[float | None, str | LossFunction]:
    """Return Li et al.'s step size and loss for the norm when not given (see the module)."""
    linf = get_norm(norm, name="norm").name == "linf"
    if loss is None:
        loss = "ce" if linf else "cw"
    if alpha is None and isinstance(eps, (int, float)) and isinstance(steps, int) and steps > 0:
        alpha = eps / 10 if linf else 2.5 * eps / steps
    return alpha, loss


class SO(Attack):
    r"""S-O attack in the paper 'On Norm-Agnostic Robustness of Adversarial Training'.

    Li, Chen, Wang & Carin; the attack also appears in
    'Second-order adversarial attack and certifiable robustness'
    [https://arxiv.org/abs/1809.03113]

    Distance Measure : Linf or L2

    Shape : ``x`` :math:`(B, C, H, W)` (any ``(B, ...)``) in [0, 1], float32 or float64;
    ``y`` :math:`(B,)` integer labels; output: same as ``x``.

    .. math::
        g^t = \frac1S \sum_{s=1}^{S} \nabla_x L(x^t + d_s, y),
        \quad d_s \sim \mathcal N(0, \sigma^2 I) \text{ i.i.d.},
        \qquad x^{t+1} = \Pi_{x + \mathcal S}\bigl(x^t + \alpha\,u(g^t)\bigr),

    with :math:`u(g) = g/\|g\|_2` for :math:`\ell_2` (eq. 4) and
    :math:`\operatorname{sign}(g)` for :math:`\ell_\infty` (the authors' code).
    Every noise sample :math:`d_s` is drawn independently (the authors' code may
    reuse one seed for all of them, which makes the :math:`S` samples equal).
    Noisy points :math:`x^t + d_s` are not clipped to [0, 1]: they only probe
    the loss landscape.  One step costs :math:`S` input gradients.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits for inputs in [0, 1].
    eps : float
        Radius ε (paper, MNIST: 0.3 for Linf, 4.0 for L2).
    norm : {"linf", "l2"} or Norm
        Threat model.  (Default: ``"linf"``)
    steps : int
        Number of steps.  (Default: 20, authors' code)
    alpha : float, optional
        Step size.  (Default: ``eps / 10`` for Linf, ``2.5 * eps / steps`` for
        L2, authors' code)
    loss : {"ce", "cw"} or callable, optional
        (Default: ``"ce"`` for Linf, ``"cw"`` for L2, authors' code)
    kappa : float
        CW margin.  (Default: 50, authors' code)
    samples : int
        Noise samples :math:`S` per step.  (Default: 10, authors' code)
    sigma : float
        Noise standard deviation σ.  (Default: 0.7, authors' MNIST setting;
        they use 100/255 on CIFAR-10)
    random_start : bool
        (Default: False, authors' code)
    restarts : int
        Restarts, keeping each sample's worst case.  (Default: 1)
    early_stop : bool
        Stop updating misclassified samples.  (Default: False)
    seed : int, optional
        Seed of the noise.  (Default: ``None``, i.e. ``DEFAULT_SEED`` = 0)

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import SO
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
    >>> x_adv = SO(model, eps=0.3, steps=5, samples=4)(x, y)
    >>> x_adv.shape
    torch.Size([2, 1, 2, 2])
    """

    name = "SO"
    stochastic_direction = True

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        eps: float,
        norm: str | Norm = "linf",
        steps: int = 20,
        alpha: float | None = None,
        loss: str | LossFunction | None = None,
        kappa: float = 50.0,
        samples: int = 10,
        sigma: float = 0.7,
        random_start: bool = False,
        restarts: int = 1,
        early_stop: bool = False,
        seed: int | None = None,
    ) -> None:
        alpha, loss = _so_defaults(norm, eps, steps, alpha, loss)
        super().__init__(
            model,
            norm=norm,
            eps=eps,
            steps=steps,
            alpha=alpha,
            loss=loss,
            kappa=kappa,
            random_start=random_start,
            restarts=restarts,
            early_stop=early_stop,
            seed=seed,
        )
        self.samples = check_positive_int(samples, "samples")
        self.sigma = check_nonnegative(sigma, "sigma")

    def smoothed_gradient(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Average :math:`\nabla_x L(x + d_s)` over :math:`d_s \sim \mathcal N(0,\sigma^2 I)`.

        Parameters
        ----------
        x : torch.Tensor, shape (B, ...)
            Points.
        y : torch.Tensor, shape (B,)
            Labels.
        generator : torch.Generator, optional
            Source of the noise; a fresh one seeded with the attack's seed by
            default.

        Returns
        -------
        torch.Tensor
            The average of ``samples`` gradients at independently perturbed
            points, shaped like ``x``.
        """
        if generator is None:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(self.seed)
        total = torch.zeros_like(x)
        for _ in range(self.samples):
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            _, _, grad = self.loss_and_gradient(x + self.sigma * noise, y)
            total += grad
        return total / self.samples

    def direction(
        self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r"""Return the smoothed gradient :math:`g^t`; see :meth:`smoothed_gradient`."""
        return self.smoothed_gradient(x_adv, y, state.generator)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, samples={self.samples}, sigma={self.sigma:g})"


@dataclass(eq=False)
class PowerDirection:
    r"""The dominant Hessian eigenvector found by :meth:`SOPower.eigenvector`.

    Attributes
    ----------
    direction : torch.Tensor
        Unit eigenvector :math:`r` per sample, shaped like the inputs, signed so
        that :math:`g^T r \ge 0`; the gradient :math:`g` where ``fallback``.
    gradient : torch.Tensor
        :math:`g = \nabla_x L`, shaped like the inputs.
    loss : torch.Tensor, shape (B,)
        Per-sample loss.
    power : PowerIterationResult
        The core solver's per-sample result (eigenvalue, status, iterations).
    fallback : numpy.ndarray of bool, shape (B,)
        Samples whose iteration broke down (:math:`Hd = 0`) or went
        non-finite, for which the gradient is used instead.
    """

    direction: torch.Tensor
    gradient: torch.Tensor
    loss: torch.Tensor
    power: PowerIterationResult
    fallback: np.ndarray


class SOPower(Attack):
    r"""S-O attack with the power iteration of the paper's appendix (Miyato et al. 2017).

    'On Norm-Agnostic Robustness of Adversarial Training', appendix A (Li et al.)

    Distance Measure : Linf or L2

    Shape : ``x`` :math:`(B, C, H, W)` (any ``(B, ...)``) in [0, 1], float32 or float64;
    ``y`` :math:`(B,)` integer labels; output: same as ``x``.

    At every step, the dominant eigenvector :math:`r` of the input Hessian
    :math:`H = \nabla_x^2 L(x^t, y)` by the power iteration
    :math:`d^{j+1} = H d^j / \|H d^j\|_2` (:func:`krylovadv.power_iteration`
    on :class:`~krylovadv.torch.hessian.InputHessian`), signed so that
    :math:`\nabla_x L^T r \ge 0` (both :math:`\pm r` are eigenvectors; the
    ascending one is taken), then a PGD step
    :math:`x^{t+1} = \Pi_{x + \mathcal S}(x^t + \alpha\,u(r))`.  For a
    piecewise-linear network with cross-entropy :math:`H` is positive
    semi-definite, so the dominant eigenvector is the direction of largest
    curvature :math:`r^T H r`.  One step costs one gradient (with its graph)
    plus ``power_iters`` Hessian-vector products at most.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits for inputs in [0, 1].
    eps : float
        Radius ε.
    norm : {"linf", "l2"} or Norm
        Threat model.  (Default: ``"linf"``)
    steps : int
        Number of steps.  (Default: 20, as :class:`SO`)
    alpha : float, optional
        Step size.  (Default: as :class:`SO`)
    loss : {"ce", "cw"} or callable
        (Default: ``"ce"`` for both norms.  Unlike :class:`SO`'s L2 default:
        the CW margin is piecewise linear in the logits, so on a
        piecewise-linear network its input Hessian vanishes almost everywhere
        and the power iteration breaks down, falling back to the gradient.)
    kappa : float
        CW margin.  (Default: 50)
    power_iters : int
        Maximum Hessian-vector products of the power iteration per step; 1
        with ``hvp="fd-forward"`` is eq. 3 of the paper.  (Default: 10)
    tol : float
        Relative eigen-residual tolerance of :func:`krylovadv.power_iteration`.
        (Default: 1e-3)
    hvp : {"exact", "fd-forward", "fd-central"}
        Hessian-vector products; ``"fd-forward"`` with ``eta`` is the appendix's
        finite difference.  (Default: ``"exact"``)
    eta : float, optional
        Finite-difference step ξ (FD only).  (Default: dtype-aware, see
        :class:`~krylovadv.torch.hessian.InputHessian`)
    start : {"random", "gradient"}
        Start vector :math:`d^0`: a random unit vector (the appendix) or the
        gradient (deterministic).  (Default: ``"random"``)
    random_start : bool
        Random start of the attack.  (Default: False)
    restarts : int
        (Default: 1)
    early_stop : bool
        (Default: False)
    seed : int, optional
        (Default: ``None``, i.e. ``DEFAULT_SEED`` = 0)

    Notes
    -----
    Diagnostics (:attr:`AttackResult.diagnostics`, each ``(steps, B)``):
    ``"eigenvalue"`` (Rayleigh quotient), ``"power_iterations"``,
    ``"power_status"`` (:class:`krylovadv.SolverStatus` codes) and
    ``"fallback"`` (1 where the gradient replaced a broken-down or non-finite
    eigenvector).

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import SOPower
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8),
    ...                             torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
    >>> x_adv = SOPower(model, eps=0.3, steps=3)(x, y)
    >>> x_adv.shape
    torch.Size([2, 1, 2, 2])
    """

    name = "SOPower"

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        eps: float,
        norm: str | Norm = "linf",
        steps: int = 20,
        alpha: float | None = None,
        loss: str | LossFunction = "ce",
        kappa: float = 50.0,
        power_iters: int = 10,
        tol: float = 1e-3,
        hvp: str = "exact",
        eta: float | None = None,
        start: str = "random",
        random_start: bool = False,
        restarts: int = 1,
        early_stop: bool = False,
        seed: int | None = None,
    ) -> None:
        alpha, _ = _so_defaults(norm, eps, steps, alpha, loss)
        super().__init__(
            model,
            norm=norm,
            eps=eps,
            steps=steps,
            alpha=alpha,
            loss=loss,
            kappa=kappa,
            random_start=random_start,
            restarts=restarts,
            early_stop=early_stop,
            seed=seed,
        )
        self.power_iters = check_positive_int(power_iters, "power_iters")
        self.tol = check_positive(tol, "tol")
        self.hvp = check_choice(hvp, "hvp", METHODS)
        self.eta = _check_eta(eta, self.hvp)
        self.start = check_choice(start, "start", ("random", "gradient"))

    @property
    def stochastic_direction(self) -> bool:  # type: ignore[override]
        """A random power-iteration start makes the direction random."""
        return self.start == "random"

    def eigenvector(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> PowerDirection:
        r"""Dominant eigenvector of :math:`\nabla_x^2 L(x, y)` per sample, ascent-signed.

        Parameters
        ----------
        x : torch.Tensor, shape (B, ...)
            Points.
        y : torch.Tensor, shape (B,)
            Labels.
        generator : torch.Generator, optional
            For the random start vector; seeded with the attack's seed by default.

        Returns
        -------
        PowerDirection
        """
        H = InputHessian(
            self.model, x, y, loss=self.loss, method=self.hvp, eta=self.eta, kappa=self.kappa
        )
        g = H.gradient
        if self.start == "gradient":
            v0 = g.clone()
            # A zero or non-finite gradient cannot start the iteration (the core rejects a
            # non-finite start for the whole batch); any vector will do there, and a
            # non-finite Hessian then marks that sample alone NON_FINITE (fallback).
            unusable = (torch.linalg.vector_norm(g, dim=1) == 0) | ~torch.isfinite(g).all(dim=1)
            v0[unusable] = 1.0
        else:
            if generator is None:
                generator = torch.Generator(device=x.device)
                generator.manual_seed(self.seed)
            v0 = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        result = power_iteration(H, v0=v0, tol=self.tol, maxiter=self.power_iters)
        r = result.eigenvector
        status = np.asarray(result.status)
        bad = np.isin(status, (SolverStatus.BREAKDOWN, SolverStatus.NON_FINITE))
        bad |= ~torch.isfinite(r).all(dim=1).cpu().numpy()
        bad_t = torch.as_tensor(bad, device=g.device)
        sign = torch.where((g * r).sum(dim=1) < 0, -1.0, 1.0).to(r.dtype)
        r = torch.where(bad_t[:, None], g, r * sign[:, None])
        return PowerDirection(
            direction=r.reshape(x.shape),
            gradient=g.reshape(x.shape),
            loss=H.loss_values,
            power=result,
            fallback=bad,
        )

    def direction(
        self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r"""Return the ascent-signed dominant eigenvector; see :meth:`eigenvector`."""
        found = self.eigenvector(x_adv, y, state.generator)
        state.provide(loss=found.loss, gradient=found.gradient)
        state.record("eigenvalue", found.power.eigenvalue)
        state.record("power_iterations", found.power.iterations)
        state.record("power_status", found.power.status)
        state.record("fallback", found.fallback)
        return found.direction


def _check_eta(eta: float | None, hvp: str) -> float | None:
    """``eta`` is only meaningful for finite-difference products."""
    if eta is None:
        return None
    if hvp == "exact":
        raise ValueError(
            "eta is the finite-difference step; pass hvp='fd-forward' or "
            "'fd-central' with it (exact products need none)."
        )
    return check_positive(eta, "eta")
