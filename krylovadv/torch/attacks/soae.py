r"""Second-order adversarial examples (SOAE) of Qian et al., Algorithm 1.

Qian et al., *Hessian-Free Second-Order Adversarial Examples for Adversarial
Learning*.

At each of :math:`N` steps the attack solves the Newton-like system

.. math:: H\,\delta = g, \qquad g = \nabla_x L(x_n, y),\quad H = \nabla_x^2 L(x_n, y),

approximately by GMRES in the Krylov space
:math:`\mathcal K_m(H, r_0) = \operatorname{span}\{r_0, Hr_0, \dots, H^{m-1}r_0\}`
started at :math:`\delta^{(0)} = g` (:math:`r_0 = g - Hg`,
:math:`\beta = \|r_0\|_2`), stops when the residual estimate satisfies
:math:`\|\tilde r\|_2/\beta < \tau` (line 12), and steps along
:math:`\tilde\delta = \delta^{(0)} + V_m\gamma^*` (lines 16–18).

**Sign.** Setting :math:`\nabla_\delta Q = 0` for the quadratic model
:math:`Q(\delta) = L + g^T\delta + \frac12\delta^T H\delta` (eq. 3) gives
:math:`\delta = -H^{-1}g`, the *minimiser* of :math:`Q` when :math:`H` is
positive semi-definite; the paper uses :math:`\delta = +H^{-1}g` (eq. 5), and
so does this implementation.  It is the right choice for an attack: for a PSD
:math:`H` (a piecewise-linear network under cross-entropy; see docs/input-hessian.rst),
:math:`g^T\delta = g^T H^{-1} g \ge 0`, so :math:`+H^{-1}g` is an *ascent*
direction, the gradient preconditioned by the inverse curvature (large steps
where the loss is flat, small where it bends).  For an indefinite :math:`H`
(smooth activations) :math:`g^T H^{-1} g` can be negative; each sample's
:math:`g^T\tilde\delta` is checked, and a non-ascent direction falls back to
:math:`g` (see ``fallback``).  A shift :math:`\lambda > 0` (solving
:math:`(H + \lambda I)\delta = g`) makes an indefinite :math:`H` better posed.

Implementation: :class:`~krylovadv.torch.hessian.InputHessian` gives
:math:`g` and exact (or finite-difference) products :math:`Hv` per sample;
:func:`krylovadv.gmres` with ``restart = max_krylov_dim`` and ``maxiter = 1``
runs one Arnoldi cycle per sample with the recursive Givens QR of eqs. 12–14.
To stop on the paper's :math:`\|\tilde r\|/\beta` (relative to the *initial*
residual, not to :math:`\|g\|`), GMRES solves for the correction
:math:`e = \tilde\delta - \delta^{(0)}` in :math:`H e = r_0` from zero, which
is the same Krylov space and iterate as starting at :math:`\delta^{(0)} = g`
with the same number of products.

**MINRES.**  :math:`H` is symmetric, so ``solver="minres"`` runs
:func:`krylovadv.minres` instead: the same minimal-residual iterate over the
same Krylov space (both minimise :math:`\|r_0 - He\|` over
:math:`\mathcal K_m(H, r_0)`; GMRES's eqs. 9–11 with a tridiagonal
:math:`\bar H_m`), so in exact arithmetic both give the same
:math:`\tilde\delta`, but in :math:`O(n)` memory per sample instead of
GMRES's :math:`m + 1` basis vectors (what makes ImageNet-size inputs and
:math:`m` in the thousands fit).  GMRES stays the default: it is the paper's
method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...gmres import GMRESResult, gmres
from ...minres import MINRESResult, minres
from ...operators import LinearOperator, ShiftedOperator
from ...status import SolverStatus
from .._validation import check_choice, check_nonnegative, check_positive, check_positive_int
from ..hessian import METHODS, InputHessian
from ..losses import LossFunction
from .base import Attack, StepState
from .norms import Norm
from .so import _check_eta

__all__ = ["SOAE", "SOLVERS", "STEP_MODES", "NewtonDirection"]

#: How SOAE turns :math:`\tilde\delta` into a step.
STEP_MODES = ("norm", "raw")
#: Krylov solvers SOAE can use for :math:`H e = r_0`.
SOLVERS = ("gmres", "minres")


@dataclass(eq=False)
class NewtonDirection:
    r"""The second-order direction :math:`\tilde\delta \approx (H + \lambda I)^{-1} g` per sample.

    Returned by :meth:`SOAE.solve`.

    Attributes
    ----------
    delta : torch.Tensor
        :math:`\tilde\delta`, shaped like the inputs (:math:`g` where ``fallback``).
    gradient : torch.Tensor
        :math:`g = \nabla_x L`, shaped like the inputs.
    loss : torch.Tensor, shape (B,)
        Per-sample loss at the inputs.
    gmres : GMRESResult or MINRESResult
        The solve of :math:`H e = r_0` for the correction
        :math:`e = \tilde\delta - g` by the attack's ``solver`` (its
        ``iterations`` is the Krylov dimension :math:`m`).  The name is
        GMRES's, the paper's solver; :attr:`krylov` is the same object.
    krylov_dim : numpy.ndarray of int, shape (B,)
        :math:`m` per sample.
    residual : numpy.ndarray, shape (B,)
        :math:`\|g - (H + \lambda I)\tilde\delta\|_2 / \|g\|_2` of the GMRES
        iterate (before any fallback).
    ascent : numpy.ndarray, shape (B,)
        :math:`\cos\angle(g, \tilde\delta)` of the GMRES iterate (before any
        fallback); positive for an ascent direction.
    fallback : numpy.ndarray of bool, shape (B,)
        Samples for which :math:`g` replaced :math:`\tilde\delta` (non-finite
        solve, or :math:`g^T\tilde\delta \le 0` with ``fallback="gradient"``).
    hvps : numpy.ndarray of int, shape (B,)
        Hessian-vector products spent per sample (:math:`Hg` plus GMRES's).
    fd_step_rounding : numpy.ndarray or None, shape (B,)
        Finite differences only: the relative part of the step of the product
        :math:`Hg` lost to floating-point rounding of :math:`x + \eta g`
        (see :attr:`InputHessian.step_rounding`); far from 0 means the
        products are noise (see docs/input-hessian.rst).
    """

    delta: torch.Tensor
    gradient: torch.Tensor
    loss: torch.Tensor
    gmres: GMRESResult | MINRESResult
    krylov_dim: np.ndarray
    residual: np.ndarray
    ascent: np.ndarray
    fallback: np.ndarray
    hvps: np.ndarray
    fd_step_rounding: np.ndarray | None = None

    @property
    def krylov(self) -> GMRESResult | MINRESResult:
        """The Krylov solve's result, whichever solver ran (same as ``gmres``)."""
        return self.gmres


class SOAE(Attack):
    r"""SOAE in the paper 'Hessian-Free Second-Order Adversarial Examples for Adversarial Learning'.

    Qian, Wang, Wang, Gu, Guo & Swaileh, Algorithm 1

    Distance Measure : Linf or L2

    Shape : ``x`` :math:`(B, C, H, W)` (any ``(B, ...)``) in [0, 1], float32 or float64;
    ``y`` :math:`(B,)` integer labels; output: same as ``x``.

    .. math::
        \tilde\delta_n \approx H_n^{-1} g_n \ \text{(GMRES, } \|\tilde r\|/\beta < \tau),
        \qquad x_{n+1} = \Pi_{x + \mathcal S}\bigl(x_n + \alpha\,u(\tilde\delta_n)\bigr),

    :math:`g_n = \nabla_x L(x_n, y)`, :math:`H_n = \nabla_x^2 L(x_n, y)`; see
    the module docstring for the Krylov solve and why :math:`+H^{-1}g`
    ascends.  One step costs one gradient (with its graph, for exact products)
    plus :math:`m + 2` Hessian-vector products (:math:`Hg`, :math:`m` Arnoldi
    products and GMRES's true-residual check); with the exact Hessian of a
    :math:`K`-class piecewise-linear network :math:`m \le K - 1`.

    Step.  ``step_mode="norm"`` (default) takes the norm's steepest-ascent
    step along :math:`\tilde\delta`: :math:`\alpha\operatorname{sign}(\tilde\delta)`
    for :math:`\ell_\infty`, :math:`\alpha\tilde\delta/\|\tilde\delta\|_2` for
    :math:`\ell_2`, so the step length is set by α, not by the (possibly huge,
    :math:`\|H^{-1}\|`-scaled) length of :math:`\tilde\delta`, exactly as PGD
    normalises :math:`g`.  ``step_mode="raw"`` is line 18 of Algorithm 1,
    :math:`x_n + \alpha\tilde\delta` followed by the projection (the paper's
    :math:`\alpha/N` is this ``alpha``), whose useful α depends on the scale of
    :math:`H`.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits for inputs in [0, 1].
    eps : float
        Radius ε (paper: 8/255, Linf).
    norm : {"linf", "l2"} or Norm
        Threat model.  (Default: ``"linf"``)
    steps : int
        Number of steps :math:`N`.  (Default: 10; the paper reports
        convergence within 4 and runs 20 in its Fig. 3)
    alpha : float, optional
        Step size per step (the paper's :math:`\alpha/N`).  (Default:
        ``2.5 * eps / steps``, as PGD)
    loss : {"ce", "cw"} or callable
        (Default: ``"ce"``)
    kappa : float
        CW margin.  (Default: 50)
    tau : float
        GMRES threshold τ on :math:`\|\tilde r\|/\beta`.  (Default: 1e-3; the
        paper recommends :math:`10^{-4} \le \tau \le 10^{-3}`)
    max_krylov_dim : int
        Cap on the Krylov dimension :math:`m` (GMRES ``restart``, one cycle).
        (Default: 20; the paper finds m = 15 enough on MNIST and CIFAR-10)
    shift : float
        λ ≥ 0: solve :math:`(H + \lambda I)\delta = g` (a Levenberg-Marquardt
        damping for indefinite or near-singular :math:`H`).  (Default: 0, the paper)
    solver : {"gmres", "minres"}
        Krylov solver for :math:`H e = r_0`: GMRES (the paper's; one cycle of
        ``max_krylov_dim`` Arnoldi steps) or MINRES (the same iterate for a
        symmetric :math:`H`, in :math:`O(n)` memory per sample; at most
        ``max_krylov_dim`` Lanczos steps).  (Default: ``"gmres"``)
    hvp : {"exact", "fd-forward", "fd-central", "gauss-newton"}
        Hessian-vector products.  ``"fd-forward"`` with ``eta`` is the paper's
        line 3; in float32 on ReLU networks it is inaccurate
        (see docs/input-hessian.rst), hence the exact default.  ``"gauss-newton"``:
        :math:`J^\top S J v`, equal to the exact product on piecewise-linear
        networks (cross-entropy only).
        (Default: ``"exact"``)
    eta : float, optional
        Finite-difference step η (FD only; the paper suggests :math:`\le 10^{-5}`).
        (Default: dtype-aware, see :class:`~krylovadv.torch.hessian.InputHessian`)
    step_mode : {"norm", "raw"}
        See above.  (Default: ``"norm"``)
    fallback : {"gradient", "none"}
        What to do with a sample whose :math:`g^T\tilde\delta \le 0`:
        ``"gradient"`` steps along :math:`g` instead; ``"none"`` keeps
        :math:`\tilde\delta` (the paper).  A non-finite solve always falls back
        to :math:`g`.  Every fallback is counted in the diagnostics.
        (Default: ``"gradient"``)
    random_start : bool
        (Default: False, the paper)
    restarts : int
        (Default: 1)
    early_stop : bool
        (Default: False)
    seed : int, optional
        Seed of the random start.  (Default: ``None``, i.e. ``DEFAULT_SEED`` = 0)

    Notes
    -----
    Diagnostics (:attr:`AttackResult.diagnostics`, each ``(steps, B)``, NaN
    where a sample was not updated): ``"krylov_dim"`` (:math:`m`),
    ``"gmres_status"`` (:class:`krylovadv.SolverStatus` codes; ``1``,
    ``MAX_ITERATIONS``, means the cap :math:`m` was reached before τ),
    ``"residual"`` (:math:`\|g - H\tilde\delta\|/\|g\|`), ``"ascent"``
    (:math:`\cos\angle(g, \tilde\delta)`), ``"fallback"`` (1 where :math:`g`
    was used), ``"hvps"`` and, with finite differences, ``"fd_step_rounding"``
    (see :class:`NewtonDirection`).  The per-step loss and gradient norm are in
    :attr:`AttackResult.trace`.

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import SOAE
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8),
    ...                             torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
    >>> result = SOAE(model, eps=8 / 255, steps=3).run(x, y)
    >>> result.diagnostics["krylov_dim"].shape
    (3, 2)
    """

    name = "SOAE"

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        eps: float,
        norm: str | Norm = "linf",
        steps: int = 10,
        alpha: float | None = None,
        loss: str | LossFunction = "ce",
        kappa: float = 50.0,
        tau: float = 1e-3,
        max_krylov_dim: int = 20,
        shift: float = 0.0,
        solver: str = "gmres",
        hvp: str = "exact",
        eta: float | None = None,
        step_mode: str = "norm",
        fallback: str = "gradient",
        random_start: bool = False,
        restarts: int = 1,
        early_stop: bool = False,
        seed: int | None = None,
    ) -> None:
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
        self.tau = check_positive(tau, "tau")
        self.max_krylov_dim = check_positive_int(max_krylov_dim, "max_krylov_dim")
        self.shift = check_nonnegative(shift, "shift")
        self.solver = check_choice(solver, "solver", SOLVERS)
        self.hvp = check_choice(hvp, "hvp", METHODS)
        self.eta = _check_eta(eta, self.hvp)
        self.step_mode = check_choice(step_mode, "step_mode", STEP_MODES)
        self.fallback = check_choice(fallback, "fallback", ("gradient", "none"))

    def hessian(self, x: torch.Tensor, y: torch.Tensor) -> LinearOperator:
        r"""Build the operator :math:`H + \lambda I` at ``x`` (an :class:`InputHessian`, shifted).

        Parameters
        ----------
        x : torch.Tensor, shape (B, ...)
            Points.
        y : torch.Tensor, shape (B,)
            Labels.

        Returns
        -------
        LinearOperator
            Batched over the ``B`` samples, on flattened inputs; the underlying
            :class:`InputHessian` (with ``gradient`` and ``loss_values``) is the
            operator itself or its ``.operator``.
        """
        H = InputHessian(
            self.model, x, y, loss=self.loss, method=self.hvp, eta=self.eta, kappa=self.kappa
        )
        return H if self.shift == 0 else ShiftedOperator(H, self.shift)

    def solve(self, x: torch.Tensor, y: torch.Tensor) -> NewtonDirection:
        r"""Algorithm 1, lines 2–17: :math:`\tilde\delta \approx (H + \lambda I)^{-1} g` at ``x``.

        Parameters
        ----------
        x : torch.Tensor, shape (B, ...)
            Points (the current iterates).
        y : torch.Tensor, shape (B,)
            Labels.

        Returns
        -------
        NewtonDirection
        """
        A = self.hessian(x, y)
        H = A if isinstance(A, InputHessian) else A.operator
        g = H.gradient  # (B, d)
        # delta^(0) = g, r_0 = g - A g (line 4).  Rows where the product is not finite
        # (a finite difference gone wrong) get r_0 = 0, so GMRES leaves them alone.
        r0 = g - A.matvec(g)
        rounding = None if H.step_rounding is None else H.step_rounding.copy()
        finite = torch.isfinite(r0).all(dim=1)
        r0 = torch.where(finite[:, None], r0, torch.zeros_like(r0))
        # Lines 5-17 for the correction e = delta - delta^(0): H e = r_0 from e = 0,
        # so that rtol is relative to beta = ||r_0|| as in line 12.
        if self.solver == "gmres":
            result = gmres(A, r0, rtol=self.tau, restart=self.max_krylov_dim, maxiter=1)
        else:
            result = minres(A, r0, rtol=self.tau, maxiter=self.max_krylov_dim)
        delta = g + result.x
        g_norm = torch.linalg.vector_norm(g, dim=1)
        d_norm = torch.linalg.vector_norm(delta, dim=1)
        g_dot_d = (g * delta).sum(dim=1)
        tiny = torch.finfo(g.dtype).tiny
        ascent = g_dot_d / (g_norm * d_norm).clamp_min(tiny)
        status = np.asarray(result.status)
        broken = (~finite | ~torch.isfinite(delta).all(dim=1)).cpu().numpy()
        broken |= status == SolverStatus.NON_FINITE
        fallback = broken.copy()
        if self.fallback == "gradient":
            # Only a nonzero gradient can give a direction better than delta.
            fallback |= ((g_dot_d <= 0) & (g_norm > 0)).cpu().numpy()
        fb = torch.as_tensor(fallback, device=g.device)
        delta = torch.where(fb[:, None], g, delta)
        g_norm_np = g_norm.double().cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            residual = np.where(g_norm_np > 0, np.asarray(result.residual_norm) / g_norm_np, 0.0)
        return NewtonDirection(
            delta=delta.reshape(x.shape),
            gradient=g.reshape(x.shape),
            loss=H.loss_values,
            gmres=result,
            krylov_dim=np.asarray(result.iterations),
            residual=np.where(broken, np.nan, residual),
            ascent=ascent.double().cpu().numpy(),
            fallback=fallback,
            hvps=np.asarray(result.matvecs) + 1,
            fd_step_rounding=rounding,
        )

    def direction(
        self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r""":math:`\tilde\delta_n`; see :meth:`solve`."""
        found = self.solve(x_adv, y)
        state.provide(loss=found.loss, gradient=found.gradient)
        state.record("krylov_dim", found.krylov_dim)
        state.record("gmres_status", found.gmres.status)
        state.record("residual", found.residual)
        state.record("ascent", found.ascent)
        state.record("fallback", found.fallback)
        state.record("hvps", found.hvps)
        if found.fd_step_rounding is not None:
            state.record("fd_step_rounding", found.fd_step_rounding)
        return found.delta

    def update(
        self, x_adv: torch.Tensor, direction: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r"""Step along :math:`\tilde\delta`: normalised, or raw :math:`x_n + \alpha\tilde\delta`."""
        if self.step_mode == "raw":
            return torch.clamp(x_adv + self.alpha * direction, 0.0, 1.0)
        return super().update(x_adv, direction, state)

    def __repr__(self) -> str:
        return (
            f"{super().__repr__()[:-1]}, tau={self.tau:g}, "
            f"max_krylov_dim={self.max_krylov_dim}, shift={self.shift:g}, "
            f"solver={self.solver!r}, "
            f"hvp={self.hvp!r}, step_mode={self.step_mode!r})"
        )
