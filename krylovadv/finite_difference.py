r"""Hessian-vector products from gradient differences.

For a twice differentiable :math:`f` with gradient :math:`\nabla f`,

.. math::
    H v \approx \|v\|\,\frac{\nabla f(x + t u) - \nabla f(x)}{t}
    \quad\text{(forward)},\qquad
    H v \approx \|v\|\,\frac{\nabla f(x + t u) - \nabla f(x - t u)}{2t}
    \quad\text{(central)},

with :math:`u = v/\|v\|`.  This is step 3 of Qian et al.'s Algorithm 1 and the
appendix of Li et al.  The truncation error is :math:`O(t)` (forward) or
:math:`O(t^2)` (central); the rounding error is :math:`O(\varepsilon/t)`, so
the default step balances the two:

.. math::
    t = \sqrt{\varepsilon}\,(1 + \|x\|_2) \ \text{(forward)}, \qquad
    t = \varepsilon^{1/3}\,(1 + \|x\|_2) \ \text{(central)},

per sample, with :math:`\varepsilon` the machine epsilon of the array's dtype.
Two safeguards the papers do not have: the direction is normalised before the
step, and the perturbation that actually happened in floating point,
:math:`d = (x + t u) - x`, is measured; the difference quotient divides by
:math:`\langle d, u\rangle`, and the part of :math:`d` that rounding moved off
:math:`u` is reported in :attr:`FiniteDifferenceHVP.step_rounding`.

Finite differences of a piecewise-linear network's gradient are unreliable in
float32 (measured in docs/input-hessian.rst, section 3): prefer an exact HVP
where autograd is available, and check :meth:`FiniteDifferenceHVP.estimate_error`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ._backend import (
    as_batch,
    batched_dot,
    batched_norm,
    check_real_floating,
    device,
    finfo_eps,
    namespace_of,
    scatter_rows,
    to_numpy,
)
from .operators import LinearOperator, _accepts_two_args

__all__ = ["FiniteDifferenceHVP"]

Array = Any


class FiniteDifferenceHVP(LinearOperator):
    r"""Matrix-free Hessian :math:`H = \nabla^2 f(x)` from gradient differences.

    Parameters
    ----------
    grad : callable
        The gradient :math:`\nabla f`.  Called on points shaped like ``x``: a
        vector ``(n,)`` for a single ``x``, rows ``(k, n)`` for a batch.  With
        ``pass_indices=True`` it is called as ``grad(points, indices)`` with only
        the ``k`` active samples' rows and their sample numbers (active-set
        compaction); otherwise a batch is always evaluated in full, idle samples
        at their base point.
    x : array, shape (n,) or (B, n)
        The point(s) where the Hessian is taken; a batch gives ``B`` independent
        Hessians :math:`H_i = \nabla^2 f_i(x_i)`.
    eta : float, optional
        The papers' step :math:`\eta`: the difference is taken at
        :math:`x + \eta v`, i.e. :math:`t = \eta\|v\|`.  ``None`` (default) uses
        the dtype-aware :math:`t` of the module docstring, independent of
        :math:`\|v\|`.
    scheme : {"forward", "central"}
        Forward reuses :math:`\nabla f(x)` (1 gradient per product); central
        costs 2 but has :math:`O(t^2)` truncation error and is symmetric
        around kinks.
    grad_x : array, optional
        :math:`\nabla f(x)` if already known (saves one gradient evaluation).
    pass_indices : bool
        See ``grad``.

    Attributes
    ----------
    num_grad_evals : int
        Single-sample gradient evaluations so far.
    step : numpy.ndarray
        The effective step :math:`\langle d, u\rangle` of the last product, per
        sample (NaN where a sample was not evaluated).
    step_rounding : numpy.ndarray
        :math:`\|d - \langle d,u\rangle u\| / \langle d,u\rangle` of the last
        product: the relative part of the perturbation lost to rounding (1 where
        the whole step was lost).
    error_estimate : numpy.ndarray or None
        Relative error of the last :meth:`estimate_error` call, per sample.

    Notes
    -----
    A sample whose step rounds away entirely (:math:`\langle d,u\rangle \le 0`)
    yields a NaN row, so that a solver reports ``NON_FINITE`` for that sample
    rather than dividing by zero.

    Examples
    --------
    >>> import numpy as np
    >>> from krylovadv import FiniteDifferenceHVP
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> hvp = FiniteDifferenceHVP(lambda z: A @ z, np.array([0.5, -1.0]))
    >>> np.allclose(hvp @ np.array([1.0, 0.0]), [2.0, 1.0])
    True
    """

    def __init__(
        self,
        grad: Callable[..., Any],
        x: Array,
        *,
        eta: float | None = None,
        scheme: Literal["forward", "central"] = "forward",
        grad_x: Array | None = None,
        pass_indices: bool = False,
    ) -> None:
        if scheme not in ("forward", "central"):
            raise ValueError(f"scheme must be 'forward' or 'central'; got {scheme!r}.")
        if eta is not None and not (np.isfinite(eta) and eta > 0):
            raise ValueError(f"eta must be a positive finite float or None; got {eta}.")
        if pass_indices and not _accepts_two_args(grad):
            raise TypeError("pass_indices=True needs grad(points, indices).")
        xp = namespace_of(x)
        check_real_floating(xp, x.dtype, "x")
        x2, single = as_batch(xp, x, "x")
        if not bool(xp.all(xp.isfinite(x2))):
            raise ValueError("x contains NaN or Inf.")
        B, n = x2.shape
        super().__init__((n, n), batch_size=None if single else B, dtype=x.dtype)
        self.grad = grad
        self.x = x2
        self.single = single
        self.eta = eta
        self.scheme = scheme
        self.pass_indices = pass_indices
        self.xp = xp
        self.num_grad_evals = 0
        eps = finfo_eps(xp, x.dtype)
        factor = np.sqrt(eps) if scheme == "forward" else np.cbrt(eps)
        self._default_step = factor * (1.0 + to_numpy(batched_norm(xp, x2)).astype(np.float64))
        self.step = np.full(B, np.nan)
        self.step_rounding = np.full(B, np.nan)
        self.error_estimate: np.ndarray | None = None
        if grad_x is not None:
            g, _ = as_batch(xp, grad_x, "grad_x")
            if tuple(g.shape) != (B, n):
                raise ValueError(
                    f"grad_x has shape {tuple(grad_x.shape)} but x has shape {tuple(x.shape)}."
                )
            self._grad_x = g
        elif scheme == "forward":
            self._grad_x = self._gradient(x2, None)
        else:
            self._grad_x = None

    # -- gradient evaluation -------------------------------------------------
    def _gradient(self, points: Array, indices: Array | None) -> Array:
        """``grad`` on rows ``points`` (samples ``indices``), shape ``(k, n)``."""
        xp = self.xp
        k = points.shape[0]
        if self.single:
            rows = [xp.asarray(self.grad(points[r, :])) for r in range(k)]
            out = xp.stack([xp.reshape(g, (self.n,)) for g in rows])
        elif self.pass_indices:
            if indices is None:
                indices = xp.arange(k, dtype=xp.int64, device=device(points))
            out = xp.asarray(self.grad(points, indices))
        elif indices is not None and k != self.x.shape[0]:
            full = xp.asarray(self.x, copy=True)
            out = xp.take(
                xp.asarray(self.grad(scatter_rows(full, indices, points))), indices, axis=0
            )
        else:
            out = xp.asarray(self.grad(points))
        self.num_grad_evals += (
            k
            if (self.single or self.pass_indices or indices is None or k == self.x.shape[0])
            else self.x.shape[0]
        )
        out = xp.reshape(out, (k, self.n))
        if out.dtype != points.dtype:
            out = xp.astype(out, points.dtype)
        return out

    def _rows(self, array: Array, indices: Array | None, k: int) -> Array:
        if self.single:
            return self.xp.broadcast_to(array, (k, self.n))
        return array if indices is None else self.xp.take(array, indices, axis=0)

    def _indices_np(self, indices: Array | None, k: int) -> np.ndarray:
        if self.single:
            return np.zeros(k, dtype=np.int64)
        return np.arange(k) if indices is None else to_numpy(indices).astype(np.int64)

    # -- the product ---------------------------------------------------------
    #: A Hessian is symmetric: the adjoint product is the product.
    hermitian = True

    def _default_like(self) -> Array:
        return self.x

    def _matvec(self, v: Array, indices: Array | None) -> Array:
        return self._product(v, indices, step_scale=1.0)

    def _product(self, v: Array, indices: Array | None, step_scale: float) -> Array:
        xp = self.xp
        k = v.shape[0]
        idx_np = self._indices_np(indices, k)
        v_norm = batched_norm(xp, v)
        zero = v_norm == 0
        u = v / xp.where(zero, xp.ones_like(v_norm), v_norm)[:, None]
        if self.eta is None:
            t_np = self._default_step[idx_np] * step_scale
            t = xp.asarray(t_np, dtype=v.dtype, device=device(v))
        else:
            t = self.eta * step_scale * v_norm
        x = self._rows(self.x, indices, k)
        x_plus = x + t[:, None] * u
        d_plus = x_plus - x
        t_plus = batched_dot(xp, d_plus, u)
        if self.scheme == "forward":
            g_x = self._rows(self._grad_x, indices, k)
            difference = self._gradient(x_plus, indices) - g_x
            t_total = t_plus
            d_total = d_plus
        else:
            x_minus = x - t[:, None] * u
            d_minus = x - x_minus
            difference = self._gradient(x_plus, indices) - self._gradient(x_minus, indices)
            t_total = t_plus + batched_dot(xp, d_minus, u)
            d_total = d_plus + d_minus
        lost = xp.where(zero, xp.ones_like(t_total), t_total) <= 0
        safe_t = xp.where(lost | zero, xp.ones_like(t_total), t_total)
        hv = difference * (v_norm / safe_t)[:, None]
        hv = xp.where(zero[:, None], xp.zeros_like(hv), hv)
        hv = xp.where(lost[:, None], xp.full_like(hv, float("nan")), hv)
        off_axis = batched_norm(xp, d_total - t_total[:, None] * u)
        rounding = to_numpy(off_axis / safe_t).astype(np.float64)
        # A step that rounded away entirely lost all of the perturbation.
        rounding = np.where(to_numpy(lost & ~zero), 1.0, rounding)
        t_eff = to_numpy(t_total).astype(np.float64)
        if self.scheme == "central":
            t_eff = t_eff / 2
        if not self.single:
            self.step[idx_np] = t_eff
            self.step_rounding[idx_np] = rounding
        else:
            self.step[0] = t_eff[-1]
            self.step_rounding[0] = rounding[-1]
        return hv

    def estimate_error(
        self, v: Array | None = None, *, seed: int | np.random.Generator | None = None
    ) -> np.ndarray:
        r"""Estimate the relative error of the product :math:`Hv`, per sample.

        Compares the products with steps :math:`t` and :math:`t/2`: with
        truncation error :math:`C t^p` (:math:`p = 1` forward, :math:`2`
        central), :math:`\|Hv_t - Hv_{t/2}\| \approx (1 - 2^{-p})\,C t^p`, so the
        error of :math:`Hv_t` is estimated as
        :math:`\|Hv_t - Hv_{t/2}\| / (1 - 2^{-p})`, relative to
        :math:`\|Hv_t\|`.  Rounding and kinks (a ReLU switching inside the step)
        show up as a large estimate too, which is the point.

        Parameters
        ----------
        v : array, shape (n,) or (B, n), optional
            Direction(s); a seeded standard normal draw by default.
        seed : int or numpy.random.Generator, optional
            For the default direction.

        Returns
        -------
        numpy.ndarray, shape (B,)
            Estimated relative error per sample (also stored in
            :attr:`error_estimate`).  Costs 2 (forward) or 4 (central) gradient
            evaluations per sample.
        """
        xp = self.xp
        B = self.x.shape[0]
        if v is None:
            draw = np.random.default_rng(seed).standard_normal((B, self.n))
            v = xp.asarray(draw, dtype=self.x.dtype, device=device(self.x))
        v2, _ = as_batch(xp, v, "v")
        if tuple(v2.shape) != (B, self.n):
            raise ValueError(f"v has shape {tuple(v.shape)}; expected ({B}, {self.n}).")
        # step/step_rounding describe the last *product*; keep them as they were.
        saved = self.step.copy(), self.step_rounding.copy()
        hv_full = self._product(v2, None, step_scale=1.0)
        hv_half = self._product(v2, None, step_scale=0.5)
        self.step, self.step_rounding = saved
        order = 1 if self.scheme == "forward" else 2
        diff = to_numpy(batched_norm(xp, hv_full - hv_half)).astype(np.float64)
        scale = to_numpy(batched_norm(xp, hv_full)).astype(np.float64)
        tiny = np.finfo(np.float64).tiny
        estimate = diff / (1.0 - 2.0 ** (-order)) / np.maximum(scale, tiny)
        self.error_estimate = estimate
        self.num_products += 2 * B
        return estimate
