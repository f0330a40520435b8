r"""Input Hessians of a classifier's per-sample loss as a batched linear operator.

For a classifier :math:`f`, inputs :math:`x_1, \dots, x_B` and labels
:math:`y_1, \dots, y_B`, :class:`InputHessian` is the batch of independent
operators

.. math:: H_b = \nabla^2_{x}\, \ell\big(f(x_b), y_b\big) \in \mathbb R^{d\times d},
          \qquad b = 1, \dots, B,

acting on flattened inputs (:math:`d` = pixels per sample), which is what
step 3 of Qian et al.'s Algorithm 1 (the SOAE inner solve
:math:`\mathbf H\tilde\delta \approx \mathbf g` of Sec. III.B) and Li et al.'s
power iteration multiply by.  The krylovadv solvers
(:func:`krylovadv.gmres`, :func:`krylovadv.power_iteration`) take it
directly and call it with only their unconverged samples, which this operator
uses to run the network on those samples only (active-set compaction).

Products are exact by default (double backward through a cached gradient
graph); the papers' finite differences of gradients are available as
``method="fd-forward"`` / ``"fd-central"``, with their accuracy reported.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from .._backend import to_numpy
from ..finite_difference import FiniteDifferenceHVP
from ..operators import LinearOperator
from ._validation import (
    check_choice,
    check_images,
    check_labels,
    check_model_decoupled,
    check_model_input,
    check_nonnegative,
    check_positive,
)
from .hessian_products import (
    DoubleBackward,
    FiniteDifference,
    ForwardOverReverse,
    GaussNewton,
    Point,
)
from .losses import LossFunction, _loss_and_gradient

__all__ = ["EXACT_VARIANTS", "METHODS", "InputHessian"]

#: Product methods of :class:`InputHessian`.
METHODS = ("exact", "fd-forward", "fd-central", "gauss-newton")
#: Implementations of the exact product.
EXACT_VARIANTS = ("double-backward", "forward-over-reverse")


class InputHessian(LinearOperator):
    r"""Per-sample input Hessians :math:`H_b = \nabla_x^2\,\ell(f(x_b), y_b)` of a classifier.

    A batched :class:`~krylovadv.operators.LinearOperator` with
    ``batch_size = B`` and ``shape = (d, d)``, :math:`d` the number of entries
    of one input; it multiplies flattened rows, ``matvec(V, indices)`` with
    ``V`` of shape ``(k, d)`` returning :math:`H_{i_r} V_r` in row :math:`r`.

    Parameters
    ----------
    model : callable
        Maps inputs ``(B, ...)`` to logits ``(B, K)``.  Must be in eval mode
        (a BatchNorm in training mode couples the samples and raises).  The
        operator is a snapshot: do not update the model while using it.
    x : torch.Tensor, shape (B, ...)
        Points :math:`x_b` (float32 or float64, any device, any value range).
        Copied; never modified.
    y : torch.Tensor, shape (B,)
        Integer labels :math:`y_b`.
    loss : {"ce", "cw"} or callable
        Per-sample loss :math:`\ell` (see
        :func:`~krylovadv.torch.losses.per_sample_loss`).
    method : {"exact", "gauss-newton", "fd-forward", "fd-central"}
        ``"exact"``: the exact product :math:`H_b v` by automatic
        differentiation (``exact_variant``).  ``"gauss-newton"``:
        :math:`J_b^\top S_b J_b v` with :math:`J_b` the Jacobian of the logits
        and :math:`S_b = \operatorname{diag}p_b - p_b p_b^\top` (``loss="ce"``
        only), through a linearization built once
        (:class:`~krylovadv.torch.hessian_products.GaussNewton`): equal to
        :math:`H_b` for piecewise-linear networks, a positive semi-definite
        approximation for smooth ones.  ``"fd-forward"``:
        :math:`H_b v \approx (g_b(x_b + \eta v) - g_b(x_b))/\eta`, Qian et
        al.'s Algorithm 1, line 3 (one gradient per product).  ``"fd-central"``:
        :math:`(g_b(x_b + \eta v) - g_b(x_b - \eta v))/(2\eta)` (two).  Both
        through :class:`krylovadv.FiniteDifferenceHVP`, which normalises
        :math:`v`, measures the step that really happened in floating point,
        and estimates its own error (:meth:`fd_error_estimate`).
    eta : float, optional
        Finite-difference step :math:`\eta > 0` of the papers (the difference
        is taken at :math:`x + \eta v`).  ``None`` (default): the dtype-aware
        step :math:`t = \sqrt{\varepsilon}(1 + \|x_b\|)` (forward) or
        :math:`\varepsilon^{1/3}(1 + \|x_b\|)` (central) along
        :math:`v/\|v\|`.  Only for the FD methods.
    kappa : float
        Confidence :math:`\kappa` of the CW loss.
    exact_variant : {"double-backward", "forward-over-reverse"}
        How ``method="exact"`` computes :math:`H_b v`.  ``"double-backward"``
        (default) builds :math:`g = \nabla_x \sum_b \ell_b` once with
        ``create_graph=True`` and differentiates :math:`\langle g, v\rangle`
        again per product (``retain_graph=True``).  ``"forward-over-reverse"``
        is ``torch.func.jvp`` of ``torch.func.grad``: a forward-mode derivative
        of the whole gradient computation per product, no cached graph.
    rebuild_fraction : float
        Active-set compaction of the cached-graph products (double backward,
        Gauss–Newton; :class:`~krylovadv.torch.hessian_products.GraphCache`), in
        :math:`[0, 1]`: a product for :math:`k` samples reuses a cached graph of
        :math:`m` samples (zero directions for the idle ones) when it covers
        them and :math:`k \ge` ``rebuild_fraction`` :math:`\cdot\,m`; otherwise
        the graph is rebuilt for those :math:`k` samples.  ``0`` never rebuilds
        (always the full batch).

    Attributes
    ----------
    gradient : torch.Tensor, shape (B, d)
        :math:`g_b = \nabla_x \ell(f(x_b), y_b)`, flattened, detached.
    loss_values : torch.Tensor, shape (B,)
        :math:`\ell_b`, detached.
    num_hvps : int
        Single-sample products :math:`H_b v` computed so far (a row counts once).
    method : str
        The product method.
    image_shape : tuple of int
        Shape of one input, ``x.shape[1:]``.
    rows_built : int
        Samples pushed through a graph build (forward and backward with
        ``create_graph=True``), including the first one at construction.
    rows_evaluated : int
        Sample rows processed by products (zero-padded idle rows of a reused
        graph included; for FD, one per gradient evaluation).

    Notes
    -----
    **Block structure.**  The sum :math:`\sum_b \ell_b` is differentiated,
    never the mean: with the model in eval mode the Hessian of the sum with
    respect to the whole batch is block diagonal with blocks :math:`H_b`, and
    each :math:`H_b` (hence GMRES tolerances and FD steps) is independent of
    the batch size.

    **Cost, in input-gradient equivalents per product** (Madry CNN
    conv32-pool-conv64-pool-fc1024, batch 128, random images in [0, 1],
    float32, CPU, torch 2.13; CPU time on one thread, minimum of 5 rounds
    interleaved in one process, ``benchmarks/bench_torch_hvp.py``):

    ===================================  ===========
    product                              cost
    ===================================  ===========
    exact, double backward (default)     1.19 - 1.20
    exact, forward-over-reverse          2.82 - 2.87
    ``fd-forward``                       1.00 - 1.01
    ``fd-central``                       2.01 - 2.04
    graph build, once per operator       1.03 - 1.12
    ``gauss-newton``                     1.20
    Gauss–Newton graph build, once       1.60
    ===================================  ===========

    (Wall clock with 2 threads: 1.13 - 1.35 against 2.8 - 2.9.)  The graph
    build also yields :math:`g`, which a forward difference needs as well, so
    an exact product costs about 20 % more than the papers' forward difference
    and less than a central one, with no truncation error: double backward is
    the default.  The two exact variants agree to about :math:`3\cdot 10^{-7}`
    relative in float32.  The Gauss–Newton rows come from one later run of the
    same script (in which double backward measured 1.08 and the exact graph
    build 1.03): its product (a backward pass through the cached
    vector-Jacobian graph for :math:`Jv`, then one through the forward graph for
    :math:`J^\top(SJv)`) costs about as much as the exact one, and its graph
    (forward, loss gradient and a ``create_graph`` VJP) 1.6 gradients.  It is
    therefore not a speed-up on this network; what it offers is structure: it
    is positive semi-definite for every network and needs only the logits'
    Jacobian, and on a piecewise-linear network it equals :math:`H`.

    **Compaction.**  Building a graph costs about one gradient for its samples,
    a product about 1.15 gradients for all samples in the graph.  With
    :math:`k` active samples out of :math:`m` in the graph, a rebuild pays for
    itself from :math:`k < m/2` on, even for a single product; the default
    ``rebuild_fraction = 0.5`` therefore rebuilds when the active set halves,
    so the rebuilds cost at most twice the first one over a whole solve.  A
    request for samples outside the cached subset falls back to the full
    graph (kept from construction) or rebuilds.  A ``matvec`` with repeated
    indices (``to_dense``) builds a graph with one row per product.

    **Piecewise-linear networks** (ReLU, max-pool): almost everywhere
    :math:`H_b = J^\top(\operatorname{diag}p - pp^\top)J` for cross-entropy,
    PSD of rank :math:`\le K - 1`; Krylov solvers stop after at most
    :math:`K` steps.  Finite differences across ReLU or max-pool kinks are
    unreliable, badly so in float32: check :meth:`fd_error_estimate`.  Both
    facts are measured in docs/input-hessian.rst (sections 1 and 3).

    Examples
    --------
    >>> import torch, krylovadv
    >>> from krylovadv.torch import InputHessian
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Softplus(),
    ...                             torch.nn.Linear(8, 3)).double().eval()
    >>> x = torch.rand(5, 4, dtype=torch.float64)
    >>> y = torch.tensor([0, 1, 2, 0, 1])
    >>> H = InputHessian(model, x, y)
    >>> H.shape, H.batch_size
    ((4, 4), 5)
    >>> delta = krylovadv.gmres(H, H.gradient, rtol=1e-8).x   # H_b delta_b = g_b

    One sample's Hessian as a scipy operator (products run in torch, in the
    gradient's dtype and device), here for scipy's ARPACK ``eigsh``:

    >>> import numpy as np, scipy.sparse.linalg as sla
    >>> H_0 = H.to_scipy(sample=0)
    >>> top_scipy = sla.eigsh(H_0, k=1, which="LA", tol=1e-12)[0][0]
    >>> top_ours = krylovadv.eigsh(H, 1, which="LA", rng=0).sample(0).eigenvalues[0]
    >>> bool(np.isclose(top_scipy, top_ours, rtol=1e-8, atol=1e-12))
    True
    """

    #: The input Hessian is symmetric, so ``to_scipy`` gives scipy an ``rmatvec``
    #: (equal to ``matvec``).  Finite-difference products are symmetric only up to
    #: their truncation error (see :meth:`fd_error_estimate`).
    hermitian: ClassVar[bool] = True

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        loss: str | LossFunction = "ce",
        method: str = "exact",
        eta: float | None = None,
        kappa: float = 50.0,
        exact_variant: str = "double-backward",
        rebuild_fraction: float = 0.5,
    ) -> None:
        check_choice(method, "method", METHODS)
        check_choice(exact_variant, "exact_variant", EXACT_VARIANTS)
        check_images(x, "x", value_range=None)
        batch = int(x.shape[0])
        y = check_labels(y, batch, "y", device=x.device)
        check_model_decoupled(model)
        check_model_input(model, x, "x")
        _warn_if_stochastic(model)
        if eta is not None:
            if method == "exact":
                raise ValueError(
                    "eta is the finite-difference step; it only applies to "
                    "method='fd-forward' or 'fd-central' (exact products need none)."
                )
            eta = check_positive(eta, "eta")
        kappa = check_nonnegative(kappa, "kappa", allow_inf=True)
        rebuild_fraction = check_nonnegative(rebuild_fraction, "rebuild_fraction")
        if rebuild_fraction > 1:
            raise ValueError(f"rebuild_fraction must lie in [0, 1]; got {rebuild_fraction}.")
        if not callable(loss):
            check_choice(loss, "loss", ("ce", "cw"))

        d = math.prod(x.shape[1:])
        super().__init__((d, d), batch_size=batch, dtype=x.dtype)
        self.model = model
        self.x = x.detach().clone()
        self.y = y
        self.loss = loss
        self.kappa = kappa
        self.method = method
        self.eta = eta
        self.exact_variant = exact_variant
        self.rebuild_fraction = rebuild_fraction
        self.image_shape = tuple(int(s) for s in x.shape[1:])
        self._point = Point(model, self.x, y, loss, kappa)
        self._product, values, grad = self._make_product()
        self.loss_values = values.detach()
        self.gradient = grad.detach().reshape(batch, d)

    def _make_product(self) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Return the product strategy for ``method``, and the loss values and gradient at ``x``."""
        point = self._point
        if self.method == "exact" and self.exact_variant == "double-backward":
            # One build gives g itself and the graph every product reuses.
            product = DoubleBackward(point, self.rebuild_fraction)
            return product, product.cache.full.values, product.cache.full.grad
        if self.method == "gauss-newton":
            product = GaussNewton(point, self.rebuild_fraction)
            return product, product.cache.full.values, product.cache.full.grad
        values, grad = _loss_and_gradient(
            self.model, self.x, self.y, loss=self.loss, kappa=self.kappa, create_graph=False
        )
        if self.method == "exact":
            return ForwardOverReverse(point), values, grad
        scheme = "forward" if self.method == "fd-forward" else "central"
        flat = grad.detach().reshape(point.batch_size, point.n)
        return FiniteDifference(point, flat, scheme, self.eta), values, grad

    def _default_like(self) -> torch.Tensor:
        """Run scipy's products (:meth:`to_scipy`) in the gradient's dtype and device."""
        return self.gradient

    @property
    def rows_built(self) -> int:
        """Samples pushed through a graph build (construction included)."""
        return self._point.rows_built

    @property
    def rows_evaluated(self) -> int:
        """Sample rows processed by products (see the class docstring)."""
        return self._point.rows_evaluated

    # -- public helpers --------------------------------------------------------
    @property
    def num_hvps(self) -> int:
        """Single-sample products :math:`H_b v` computed so far."""
        return self.num_products

    @property
    def _fd(self) -> FiniteDifferenceHVP | None:
        product = self._product
        return product.operator if isinstance(product, FiniteDifference) else None

    @property
    def fd_operator(self) -> FiniteDifferenceHVP | None:
        """The underlying :class:`krylovadv.FiniteDifferenceHVP` (``None`` when exact)."""
        return self._fd

    @property
    def step_rounding(self) -> np.ndarray | None:
        r"""Per sample, the relative part of the last FD step lost to rounding.

        :math:`\|d - \langle d,u\rangle u\| / \langle d,u\rangle` for the
        perturbation :math:`d = (x + tu) - x` that really happened (NaN for
        samples not evaluated yet); ``None`` for exact products.
        """
        return None if self._fd is None else self._fd.step_rounding

    @property
    def fd_step(self) -> np.ndarray | None:
        r"""Per sample, the effective FD step :math:`t` of the last product (``None``: exact)."""
        return None if self._fd is None else self._fd.step

    def fd_error_estimate(
        self, v: Any = None, *, seed: int | np.random.Generator | None = None
    ) -> np.ndarray:
        r"""Estimate the relative error of the finite-difference products, per sample.

        Compares :math:`H_b v` computed with steps :math:`t` and :math:`t/2`
        (truncation error :math:`C t^p`, :math:`p = 1` forward, :math:`2`
        central): the estimate is
        :math:`\|Hv_t - Hv_{t/2}\| / ((1 - 2^{-p})\|Hv_t\|)`.  Kinks (a ReLU or
        max-pool switching inside the step) and rounding show up as large
        estimates.  See :meth:`krylovadv.FiniteDifferenceHVP.estimate_error`.

        Parameters
        ----------
        v : torch.Tensor or numpy.ndarray, shape (B, d), optional
            Directions; seeded standard normal by default.
        seed : int or numpy.random.Generator, optional
            For the default directions.

        Returns
        -------
        numpy.ndarray, shape (B,)
            Estimated relative error of each sample's product.

        Raises
        ------
        ValueError
            For ``method="exact"`` (no truncation error to estimate).
        """
        if self._fd is None:
            raise ValueError(
                "fd_error_estimate needs method='fd-forward' or 'fd-central'; "
                "exact products have no truncation error."
            )
        if v is not None and not isinstance(v, torch.Tensor):
            v = torch.as_tensor(np.asarray(v))
        if v is not None:
            v = v.to(device=self.x.device, dtype=self.x.dtype)
        return self._fd.estimate_error(v, seed=seed)

    def clear_cache(self) -> None:
        """Drop the cached subset graph (the full graph stays for later products)."""
        cache = getattr(self._product, "cache", None)
        if cache is not None:
            cache.clear()

    def __repr__(self) -> str:
        variant = f" ({self.exact_variant})" if self.method == "exact" else ""
        return (
            f"<InputHessian d={self.n} batch_size={self.batch_size} dtype={self.dtype} "
            f"loss={self.loss!r} method={self.method!r}{variant}>"
        )

    # -- the product -------------------------------------------------------------
    def _matvec(self, v: Any, indices: Any) -> Any:
        k = int(v.shape[0])
        if indices is None:
            idx_np = np.arange(k, dtype=np.int64)
        else:
            idx_np = np.asarray(to_numpy(indices)).astype(np.int64).reshape(-1)
        if idx_np.shape != (k,):
            raise ValueError(f"indices has {idx_np.size} entries for {k} rows.")
        if k and (idx_np.min() < 0 or idx_np.max() >= self.batch_size):
            raise IndexError(
                f"indices must lie in [0, {self.batch_size}); got [{idx_np.min()}, {idx_np.max()}]."
            )
        v_t, restore = self._as_tensor(v)
        if k == 0:
            return restore(v_t.new_zeros((0, self.n)))
        return restore(self._product(v_t, idx_np))

    def _as_tensor(self, v: Any) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
        """``v`` as a detached tensor on the operator's device and dtype, and the way back."""
        if isinstance(v, torch.Tensor):
            dtype, dev = v.dtype, v.device
            return (
                v.detach().to(device=self.x.device, dtype=self.x.dtype),
                lambda out: out.to(device=dev, dtype=dtype),
            )
        if isinstance(v, np.ndarray):
            np_dtype = v.dtype
            return (
                torch.as_tensor(v).to(device=self.x.device, dtype=self.x.dtype),
                lambda out: out.detach().cpu().numpy().astype(np_dtype, copy=False),
            )
        raise TypeError(
            f"InputHessian multiplies torch tensors or numpy arrays; got {type(v).__name__}."
        )


def _warn_if_stochastic(model: Any) -> None:
    """Warn when dropout is active: every product would see another random network."""
    if not isinstance(model, nn.Module):
        return
    for name, module in model.named_modules():
        if isinstance(module, _DropoutNd) and module.training and module.p > 0:
            warnings.warn(
                f"{type(module).__name__} module '{name or 'model'}' is in training "
                "mode: the loss is random, so Hessian products are inconsistent. "
                "Call model.eval() first.",
                RuntimeWarning,
                stacklevel=3,
            )
            return
