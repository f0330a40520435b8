r"""The one attack loop every attack of :mod:`krylovadv.torch.attacks` shares.

An iterative attack on an :math:`\ell_p` ball is projected ascent on the loss
(Madry et al. 2018; Li et al., eq. 2):

.. math::  x^{t+1} = \Pi_{x + \mathcal S}\bigl(x^t + \alpha\,u(d^t)\bigr),
           \qquad t = 0, \dots, T - 1,

where :math:`u` is the norm's steepest-ascent unit direction
(:mod:`~krylovadv.torch.attacks.norms`) and the attacks differ **only** in the
direction :math:`d^t`: the gradient :math:`\nabla_x L` (PGD), a Gaussian-smoothed
gradient (S-O, Li et al.), the dominant Hessian eigenvector (S-O, appendix), or
:math:`H^{-1}\nabla_x L` from GMRES (SOAE, Qian et al.).  A subclass overrides
:meth:`Attack.direction`; everything else is here, once:

- the model is put in eval mode and every submodule's own mode is restored
  afterwards, also on an exception; gradients are taken with
  :func:`torch.autograd.grad` with respect to the inputs only, so
  ``param.grad`` is never touched;
- the loss is the **sum** of per-sample losses, so each sample's gradient (and
  Hessian) does not depend on the batch size or on the other samples;
- randomness comes from a :class:`torch.Generator` seeded at every call
  (``seed=None`` means :data:`DEFAULT_SEED`, not the clock): the same inputs
  give the same output;
- inputs are checked (finite, in :math:`[0, 1]`, one integer label per
  sample); the output has the input's shape, dtype and device, lies in
  :math:`[0, 1]` and in the ε-ball;
- restarts keep, per sample, the worst case: a successful restart beats an
  unsuccessful one, and among equals the higher final loss wins;
- optional early stop freezes a sample as soon as it is misclassified (and
  later restarts skip it);
- :meth:`Attack.run` returns an :class:`AttackResult` with per-sample success,
  a per-step :class:`AttackTrace` (Li et al., Fig. 1, plots its
  ``mean_grad_norm``) and the attack's own diagnostics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import (
    check_choice,
    check_images,
    check_labels,
    check_model_decoupled,
    check_model_input,
    check_nonnegative,
    check_positive_int,
)
from ..losses import LOSSES, LossFunction, per_sample_loss
from ..progress import progress_bar
from .norms import Norm, get_norm

__all__ = ["DEFAULT_SEED", "Attack", "AttackResult", "AttackTrace", "StepState", "eval_mode"]

#: Seed used when ``seed=None``: attacks are reproducible by default.
DEFAULT_SEED = 0


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Put ``model`` in eval mode; restore every submodule's own mode on exit.

    Restoring per submodule (not ``model.train(was_training)``) keeps a model
    whose parts were in different modes exactly as it was, also when the body
    raises.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Anything else than a module is left alone.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@dataclass(eq=False)
class AttackTrace:
    r"""Per-step, per-sample record of one attack run.

    Row :math:`t` describes the iterate :math:`x^t`: row 0 the start point,
    row ``steps`` the returned point.  A sample frozen by early stop keeps its
    last values (its iterate no longer changes).

    Attributes
    ----------
    loss : numpy.ndarray, shape (steps + 1, B)
        Per-sample loss :math:`L(x^t_i, y_i)`.
    grad_norm : numpy.ndarray, shape (steps + 1, B)
        :math:`\|\nabla_x L(x^t_i, y_i)\|_2`.
    success : numpy.ndarray of bool, shape (steps + 1, B)
        Whether :math:`x^t_i` is misclassified.
    """

    loss: np.ndarray
    grad_norm: np.ndarray
    success: np.ndarray

    def __len__(self) -> int:
        """Return the number of recorded iterates, ``steps + 1``."""
        return int(self.loss.shape[0])

    @property
    def mean_loss(self) -> np.ndarray:
        """Batch mean of the loss per step, shape ``(steps + 1,)``."""
        return self.loss.mean(axis=1)

    @property
    def mean_grad_norm(self) -> np.ndarray:
        r""":math:`\frac{1}{B}\sum_i \|\nabla_x L(x^t_i)\|_2` per step (Li et al., Fig. 1)."""
        return self.grad_norm.mean(axis=1)

    @property
    def success_rate(self) -> np.ndarray:
        """Fraction of misclassified samples per step, shape ``(steps + 1,)``."""
        return self.success.mean(axis=1)


@dataclass(eq=False)
class AttackResult:
    r"""Outcome of :meth:`Attack.run` on a batch of ``B`` samples.

    Attributes
    ----------
    x_adv : torch.Tensor
        Adversarial examples, same shape, dtype and device as the inputs.
    success : torch.Tensor of bool, shape (B,)
        Whether the model misclassifies ``x_adv`` (on the inputs' device).
    loss : torch.Tensor, shape (B,)
        Per-sample loss at ``x_adv``.
    restart : numpy.ndarray of int, shape (B,)
        Which restart produced each sample's ``x_adv``.
    trace : AttackTrace or None
        Per-step record of the kept restart of each sample (``None`` when
        ``run(..., trace=False)``).
    diagnostics : dict of str to numpy.ndarray
        Attack-specific per-step, per-sample records, each of shape
        ``(steps, B)``, NaN where a sample was not updated (early stop).  See the
        attack's documentation for the keys (e.g. ``"krylov_dim"`` for SOAE).
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    loss: torch.Tensor
    restart: np.ndarray
    trace: AttackTrace | None = None
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def robust_accuracy(self) -> float:
        """Fraction of samples still classified correctly at ``x_adv``."""
        return 1.0 - float(self.success.float().mean())

    @property
    def num_fallbacks(self) -> int:
        """How many (step, sample) directions fell back to the gradient (0 if none can)."""
        flags = self.diagnostics.get("fallback")
        return 0 if flags is None else int(np.nansum(flags))


class StepState:
    r"""What the loop knows about the iterate :math:`x^t` of the samples it updates.

    Quantities are computed on first use and cached, so a direction that needs
    :math:`\nabla_x L(x^t)` and a trace that records its norm pay for one
    gradient, and a direction that obtains the gradient elsewhere (SOAE's
    Hessian operator) hands it over with :meth:`provide`.

    Parameters
    ----------
    attack : Attack
        The attack (for its model and loss).
    x_adv : torch.Tensor, shape (k, ...)
        Current iterates of the ``k`` samples being updated.
    y : torch.Tensor, shape (k,)
        Their labels.
    step : int
        :math:`t`, zero-based.
    generator : torch.Generator
        The run's seeded source of randomness.
    indices : numpy.ndarray of int, shape (k,)
        The samples' positions in the batch.

    Attributes
    ----------
    records : dict of str to numpy.ndarray
        Per-sample diagnostics of this step (filled by :meth:`record`).
    """

    def __init__(
        self,
        attack: Attack,
        x_adv: torch.Tensor,
        y: torch.Tensor,
        step: int,
        generator: torch.Generator,
        indices: np.ndarray,
    ) -> None:
        self.attack = attack
        self.x_adv = x_adv
        self.y = y
        self.step = step
        self.generator = generator
        self.indices = indices
        self.records: dict[str, np.ndarray] = {}
        self._logits: torch.Tensor | None = None
        self._loss: torch.Tensor | None = None
        self._grad: torch.Tensor | None = None

    @property
    def logits(self) -> torch.Tensor:
        """Model output at :math:`x^t`, shape ``(k, K)`` (a forward pass if not cached)."""
        if self._logits is None:
            with torch.no_grad():
                self._logits = self.attack.model(self.x_adv)
        return self._logits

    @property
    def loss(self) -> torch.Tensor:
        """Per-sample loss :math:`L(x^t_i, y_i)`, shape ``(k,)``."""
        if self._loss is None:
            self._loss = self.attack.per_sample_loss(self.logits, self.y).detach()
        return self._loss

    @property
    def gradient(self) -> torch.Tensor:
        r""":math:`\nabla_x L(x^t_i, y_i)` per sample, shaped like ``x_adv``."""
        if self._grad is None:
            logits, loss, grad = self.attack.loss_and_gradient(self.x_adv, self.y)
            self._logits, self._loss, self._grad = logits, loss, grad
        return self._grad

    @property
    def success(self) -> torch.Tensor:
        """Whether each :math:`x^t_i` is misclassified, shape ``(k,)``."""
        return self.logits.argmax(dim=1) != self.y

    def provide(self, *, loss: torch.Tensor, gradient: torch.Tensor) -> None:
        """Hand over a loss and gradient at :math:`x^t` computed elsewhere.

        Parameters
        ----------
        loss : torch.Tensor, shape (k,)
            Per-sample loss.
        gradient : torch.Tensor
            Per-sample gradient, any shape with ``k`` rows (reshaped like ``x_adv``).
        """
        self._loss = loss.detach()
        self._grad = gradient.detach().reshape(self.x_adv.shape)

    def record(self, name: str, values: Any) -> None:
        """Store one per-sample diagnostic of this step (``k`` values, cast to float).

        Parameters
        ----------
        name : str
            Key of :attr:`AttackResult.diagnostics`.
        values : array-like or torch.Tensor, shape (k,)
            One value per sample being updated.
        """
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().double().numpy()
        self.records[name] = np.asarray(values, dtype=np.float64).reshape(-1)

    def subset(self, keep: torch.Tensor) -> StepState:
        """Restrict to the samples where ``keep`` is true (cached values sliced, not recomputed).

        Parameters
        ----------
        keep : torch.Tensor of bool, shape (k,)

        Returns
        -------
        StepState
        """
        keep_np = keep.detach().cpu().numpy()
        sub = StepState(
            self.attack,
            self.x_adv[keep],
            self.y[keep],
            self.step,
            self.generator,
            self.indices[keep_np],
        )
        sub._logits = None if self._logits is None else self._logits[keep]
        sub._loss = None if self._loss is None else self._loss[keep]
        sub._grad = None if self._grad is None else self._grad[keep]
        return sub


@dataclass(eq=False)
class _Run:
    """One restart's outcome on its samples (internal)."""

    x_adv: torch.Tensor
    loss: torch.Tensor | None
    success: torch.Tensor | None
    trace: AttackTrace | None
    diagnostics: dict[str, np.ndarray]


class Attack:
    r"""Base class of the iterative :math:`\ell_p` attacks (projected ascent on the loss).

    Subclasses implement :meth:`direction`; the loop, the checks, the
    randomness, the restarts and the records are shared (see the module
    docstring).

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits ``(B, K)`` for inputs in :math:`[0, 1]`
        (put any normalisation inside the model).
    norm : {"linf", "l2"} or Norm
        Threat model :math:`\|x' - x\|_p \le \varepsilon`.
    eps : float
        Radius :math:`\varepsilon \ge 0`.
    steps : int
        Number of ascent steps :math:`T \ge 1`.
    alpha : float
        Step size :math:`\alpha \ge 0` per step.
    loss : {"ce", "cw"} or callable
        Cross-entropy, or the Carlini-Wagner margin loss clipped at ``kappa``;
        both are maximised.  A callable ``loss(logits, y)`` must return one
        value per sample (see :func:`krylovadv.torch.losses.per_sample_loss`).
    kappa : float
        Margin :math:`\kappa \ge 0` of the CW loss.
    random_start : bool
        Start from a random point of the ball instead of :math:`x`.
    restarts : int
        Independent runs; each sample keeps its worst case.
    early_stop : bool
        Stop updating a sample once it is misclassified.
    seed : int or None
        Seed of the run's :class:`torch.Generator`; ``None`` means
        :data:`DEFAULT_SEED`.  Every call starts from this seed.

    Attributes
    ----------
    name : str
        Short name of the attack.
    deterministic : bool
        Whether the output is a function of each sample alone (no random start,
        no noise), so that ``attack(x)[i] == attack(x[i:i+1])``.
    """

    name = "Attack"
    #: Whether the direction itself draws random numbers (S-O's noise).
    stochastic_direction = False

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        norm: str | Norm = "linf",
        eps: float,
        steps: int = 10,
        alpha: float | None = None,
        loss: str | LossFunction = "ce",
        kappa: float = 50.0,
        random_start: bool = False,
        restarts: int = 1,
        early_stop: bool = False,
        seed: int | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(
                f"model must be a torch.nn.Module or a callable returning logits; "
                f"got {type(model).__name__}."
            )
        self.model = model
        self.norm = get_norm(norm, name="norm")
        self.eps = check_nonnegative(eps, "eps")
        self.steps = check_positive_int(steps, "steps")
        self.alpha = check_nonnegative(
            2.5 * self.eps / self.steps if alpha is None else alpha, "alpha"
        )
        self.loss = loss if callable(loss) else check_choice(loss, "loss", tuple(LOSSES))
        self.kappa = check_nonnegative(kappa, "kappa")
        self.random_start = _check_bool(random_start, "random_start")
        self.restarts = check_positive_int(restarts, "restarts")
        self.early_stop = _check_bool(early_stop, "early_stop")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be None or an int >= 0; got {seed!r}.")
        self.seed = DEFAULT_SEED if seed is None else int(seed)

    # -- what subclasses provide ---------------------------------------------------------
    def direction(
        self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r"""Ascent direction :math:`d^t` at the iterates ``x_adv`` (to be overridden).

        Parameters
        ----------
        x_adv : torch.Tensor, shape (k, ...)
            Current iterates of the samples being updated.
        x : torch.Tensor, shape (k, ...)
            Their clean inputs.
        y : torch.Tensor, shape (k,)
            Their labels.
        state : StepState
            Cached loss and gradient at ``x_adv``, the generator, and
            :meth:`StepState.record` for diagnostics.

        Returns
        -------
        torch.Tensor
            Shape of ``x_adv``; the norm turns it into a step.
        """
        raise NotImplementedError

    def update(
        self, x_adv: torch.Tensor, direction: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r"""Return the new point before projection: the norm's step :math:`x^t + \alpha u(d^t)`.

        Parameters
        ----------
        x_adv, direction : torch.Tensor
            Iterates and directions of the samples being updated.
        state : StepState
            As in :meth:`direction`.

        Returns
        -------
        torch.Tensor
        """
        return self.norm.step(x_adv, direction, self.alpha)

    @property
    def deterministic(self) -> bool:
        """Whether the output for a sample depends on that sample alone."""
        return not (self.random_start or self.stochastic_direction)

    # -- shared helpers ------------------------------------------------------------------
    def per_sample_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Evaluate the attack's per-sample loss of ``logits`` ``(B, K)``, shape ``(B,)``."""
        return per_sample_loss(logits, y, self.loss, kappa=self.kappa)

    def loss_and_gradient(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Logits, per-sample loss and :math:`\nabla_x \sum_i L(x_i, y_i)` at ``x``.

        Parameters
        ----------
        x : torch.Tensor, shape (B, ...)
            Points (not necessarily in [0, 1]: S-O evaluates noisy points).
        y : torch.Tensor, shape (B,)
            Labels.

        Returns
        -------
        logits : torch.Tensor, shape (B, K)
        loss : torch.Tensor, shape (B,)
        gradient : torch.Tensor, shaped like ``x``
            Row :math:`i` is :math:`\nabla_{x_i} L(x_i, y_i)` (the sum decouples
            in eval mode).  Parameter gradients are neither computed nor stored.
        """
        with torch.enable_grad():
            x_req = x.detach().requires_grad_(True)
            logits = self.model(x_req)
            loss = self.per_sample_loss(logits, y)
            (grad,) = torch.autograd.grad(loss.sum(), x_req)
        return logits.detach(), loss.detach(), grad

    # -- entry points --------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return adversarial examples for ``x`` with labels ``y``.

        Parameters
        ----------
        x : torch.Tensor, shape (B, C, H, W) or (B, ...)
            Inputs in [0, 1], float32 or float64.
        y : torch.Tensor, shape (B,)
            Integer labels.

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``x``; equal to
            ``self.run(x, y).x_adv``.
        """
        return self._run(x, y, trace=False, evaluate=False, progress=False)[0].x_adv

    def run(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        trace: bool = True,
        progress: bool | None = None,
    ) -> AttackResult:
        r"""Run the attack and return the adversarial examples with their records.

        Parameters
        ----------
        x : torch.Tensor, shape (B, ...)
            Inputs in [0, 1].
        y : torch.Tensor, shape (B,)
            Integer labels.
        trace : bool
            Record the per-step loss, gradient norm and success.  The gradient
            norm may cost an extra gradient per step for attacks that do not
            compute :math:`\nabla_x L(x^t)` anyway (S-O); the adversarial
            examples are the same either way.
        progress : bool or None
            A bar over the attack's iterations; ``None`` (default): only when
            stderr is a terminal (:func:`krylovadv.torch.progress.progress_enabled`,
            the rule of every long-running entry point).

        Returns
        -------
        AttackResult
        """
        best, restart = self._run(x, y, trace=trace, evaluate=True, progress=progress)
        return AttackResult(
            x_adv=best.x_adv,
            success=best.success,
            loss=best.loss,
            restart=restart,
            trace=best.trace,
            diagnostics=best.diagnostics,
        )

    # -- the loop ------------------------------------------------------------------------
    def _steps(self, count: int) -> Any:
        """``range(count)``, with a progress bar while ``run(progress=...)`` asks for one."""
        label = f"{type(self).__name__}-{self.norm.name}"
        progress = getattr(self, "_progress", False)
        return progress_bar(range(count), progress=progress, desc=label, unit="step")

    def _run(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        trace: bool,
        evaluate: bool,
        progress: bool | None = False,
    ) -> tuple[_Run, np.ndarray]:
        """Check the inputs, run every restart and keep each sample's worst case."""
        x = check_images(x, "x")
        y = check_labels(y, int(x.shape[0]), "y", device=x.device)
        check_model_input(self.model, x, "x")
        x = x.detach()
        B = int(x.shape[0])
        generator = torch.Generator(device=x.device)
        generator.manual_seed(self.seed)
        with eval_mode(self.model), torch.enable_grad():
            check_model_decoupled(self.model)  # a module whose eval() leaves BatchNorm training
            evaluate = evaluate or trace or self.restarts > 1
            self._progress = progress  # read by _steps(); private: not part of the config
            try:
                best = self._attack_once(x, y, generator, trace=trace, evaluate=evaluate)
                restart = np.zeros(B, dtype=np.int64)
                for r in range(1, self.restarts):
                    todo = torch.ones(B, dtype=torch.bool, device=x.device)
                    if self.early_stop:
                        todo = ~best.success
                        if not bool(todo.any()):
                            break
                    run = self._attack_once(x[todo], y[todo], generator, trace=trace, evaluate=True)
                    better = _keep_better(best, run, todo)
                    restart[_positions(todo, better)] = r
            finally:
                self._progress = False
        return best, restart

    def _attack_once(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        *,
        trace: bool,
        evaluate: bool,
    ) -> _Run:
        """One restart on the samples ``x``; see the module docstring."""
        B, T = int(x.shape[0]), self.steps
        if self.random_start:
            x_adv = self.norm.random_start(x, self.eps, generator)
        else:
            x_adv = x.clone()
        records = _Records(T, B, trace)
        active = np.ones(B, dtype=bool)
        for t in self._steps(T):
            idx_np = np.flatnonzero(active)
            if idx_np.size == 0:
                break
            idx = None if idx_np.size == B else torch.as_tensor(idx_np, device=x.device)
            state = StepState(self, _rows(x_adv, idx), _rows(y, idx), t, generator, idx_np)
            if self.early_stop:
                done = state.success
                records.point(t, state, gradient=trace)
                if bool(done.any()):
                    active[idx_np[done.cpu().numpy()]] = False
                    state = state.subset(~done)
                    if state.indices.size == 0:
                        continue
                    idx = torch.as_tensor(state.indices, device=x.device)
            x_rows = _rows(x, idx)
            direction = self.direction(state.x_adv, x_rows, state.y, state)
            if trace:
                records.point(t, state, gradient=True)
            records.diagnostics(t, state)
            x_new = self.update(state.x_adv, direction, state)
            x_new = self.norm.project(x_new, x_rows, self.eps).to(x_adv.dtype)
            if idx is None:
                x_adv = x_new
            else:
                x_adv[idx] = x_new
        loss = success = None
        if evaluate:
            final = StepState(self, x_adv, y, T, generator, np.arange(B))
            records.point(T, final, gradient=trace)
            loss, success = final.loss, final.success
        return _Run(
            x_adv=x_adv, loss=loss, success=success, trace=records.trace(), diagnostics=records.diag
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(norm={self.norm.name!r}, eps={self.eps:g}, "
            f"steps={self.steps}, alpha={self.alpha:g}, loss={self.loss!r}, "
            f"random_start={self.random_start}, restarts={self.restarts})"
        )


def _rows(t: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """Rows ``idx`` of ``t`` (all of them, uncopied, for ``None``)."""
    return t if idx is None else t[idx]


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def _positions(todo: torch.Tensor, better: torch.Tensor) -> np.ndarray:
    """Batch positions of the samples of a restart (run on ``todo``) that improved."""
    return np.flatnonzero(todo.cpu().numpy())[better.cpu().numpy()]


def _keep_better(best: _Run, run: _Run, todo: torch.Tensor) -> torch.Tensor:
    """Merge a rerun on ``todo`` into ``best`` where it is better; return that mask.

    Better: a success where ``best`` failed, or the same outcome with a higher
    loss (AutoAttack's rule for restarts and for APGD-T's target classes).
    """
    better = (run.success & ~best.success[todo]) | (
        (run.success == best.success[todo]) & (run.loss > best.loss[todo])
    )
    _merge(best, run, todo, better)
    return better


def _merge(best: _Run, run: _Run, todo: torch.Tensor, better: torch.Tensor) -> None:
    """Copy the improved samples of ``run`` (a restart on ``todo``) into ``best``."""
    pos_np = _positions(todo, better)
    if pos_np.size == 0:
        return
    pos = torch.as_tensor(pos_np, device=best.x_adv.device)
    best.x_adv[pos] = run.x_adv[better]
    best.loss[pos] = run.loss[better]
    best.success[pos] = run.success[better]
    better_np = better.cpu().numpy()
    if best.trace is not None and run.trace is not None:
        for name in ("loss", "grad_norm", "success"):
            getattr(best.trace, name)[:, pos_np] = getattr(run.trace, name)[:, better_np]
    for name, values in run.diagnostics.items():
        target = best.diagnostics.setdefault(
            name, np.full_like(values, np.nan, shape=(values.shape[0], best.x_adv.shape[0]))
        )
        target[:, pos_np] = values[:, better_np]


class _Records:
    """Per-step, per-sample records of one restart (host-side numpy)."""

    def __init__(self, steps: int, batch: int, trace: bool) -> None:
        self.steps, self.batch, self.tracing = steps, batch, trace
        self.loss = np.full((steps + 1, batch), np.nan)
        self.grad_norm = np.full((steps + 1, batch), np.nan)
        self.success = np.full((steps + 1, batch), np.nan)
        self.diag: dict[str, np.ndarray] = {}

    def point(self, t: int, state: StepState, *, gradient: bool) -> None:
        """Record loss and success (and the gradient norm) at the iterates of ``state``."""
        if state.indices.size == 0:
            return
        self.loss[t, state.indices] = state.loss.double().cpu().numpy()
        self.success[t, state.indices] = state.success.cpu().numpy()
        if gradient and self.tracing:
            norms = torch.linalg.vector_norm(state.gradient.flatten(1), dim=1)
            self.grad_norm[t, state.indices] = norms.double().cpu().numpy()

    def diagnostics(self, t: int, state: StepState) -> None:
        """Copy the direction's per-sample records of step ``t``."""
        for name, values in state.records.items():
            if name not in self.diag:
                self.diag[name] = np.full((self.steps, self.batch), np.nan)
            self.diag[name][t, state.indices] = values

    def trace(self) -> AttackTrace | None:
        """Build the trace, frozen samples carrying their last values forward."""
        if not self.tracing:
            return None
        for arr in (self.loss, self.grad_norm, self.success):
            for t in range(1, arr.shape[0]):
                missing = np.isnan(arr[t])
                arr[t, missing] = arr[t - 1, missing]
        return AttackTrace(
            loss=self.loss, grad_norm=self.grad_norm, success=self.success.astype(bool)
        )
