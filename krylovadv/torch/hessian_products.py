r"""How :class:`~krylovadv.torch.hessian.InputHessian` computes one batch of products.

Each product method is a small strategy object with one job: given directions
``V`` (``(k, d)``) for samples ``indices``, return :math:`H_{i_r} V_r` (or its
approximation).  The operator validates, converts and dispatches; the
strategies do the differentiation.  The methods:

- :class:`DoubleBackward`: exact, :math:`\nabla_x\langle g, v\rangle` through a
  cached graph of :math:`g` (the default);
- :class:`ForwardOverReverse`: exact, ``torch.func.jvp`` of ``torch.func.grad``;
- :class:`GaussNewton`: :math:`J^\top S J v` through a cached linearization,
  exact for piecewise-linear networks;
- :class:`FiniteDifference`: the papers' forward/central differences of gradients.

The two cached-graph strategies share :class:`GraphCache`, the active-set
compaction bookkeeping (a graph of the full batch, kept from construction, and
one of the most recent subset).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..finite_difference import FiniteDifferenceHVP
from .losses import LossFunction, _loss_and_gradient, per_sample_loss

__all__ = [
    "DoubleBackward",
    "FiniteDifference",
    "ForwardOverReverse",
    "GaussNewton",
    "GraphCache",
    "Point",
    "RowGraph",
]


@dataclass
class Point:
    r"""Where the Hessians are taken: model, inputs :math:`x_b`, labels, loss; and the counters.

    Attributes
    ----------
    rows_built : int
        Samples pushed through a graph build (forward and backward with
        ``create_graph=True``).
    rows_evaluated : int
        Sample rows processed by products (zero-padded idle rows included).
    """

    model: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    y: torch.Tensor
    loss: str | LossFunction
    kappa: float
    rows_built: int = 0
    rows_evaluated: int = 0

    @property
    def batch_size(self) -> int:
        """Number of samples ``B``."""
        return int(self.x.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one input."""
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def n(self) -> int:
        """Entries ``d`` of one input."""
        return int(np.prod(self.image_shape))

    def leaf(self, idx_np: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a fresh leaf ``x[idx]`` requiring grad, and ``y[idx]``."""
        if idx_np.size == self.batch_size and np.array_equal(idx_np, np.arange(idx_np.size)):
            return self.x.detach().requires_grad_(True), self.y  # a new view: x stays as it is
        idx = torch.as_tensor(idx_np, device=self.x.device)
        return self.x.index_select(0, idx).requires_grad_(True), self.y.index_select(0, idx)

    def losses(self, inputs: torch.Tensor, y_rows: torch.Tensor) -> torch.Tensor:
        """Per-sample losses of ``inputs`` with labels ``y_rows``."""
        return per_sample_loss(self.model(inputs), y_rows, loss=self.loss, kappa=self.kappa)


@dataclass
class RowGraph:
    r"""An autograd graph built for the samples ``indices`` (row ``r`` is sample ``indices[r]``).

    ``tensors`` holds what the strategy built (e.g. :math:`g` with its graph);
    ``position[b]`` is the row of sample ``b`` (``-1`` if absent).
    """

    indices: np.ndarray
    leaf: torch.Tensor
    values: torch.Tensor
    grad: torch.Tensor
    tensors: dict[str, Any] = field(default_factory=dict)
    position: np.ndarray = field(init=False)
    batch_size: int = 0

    def __post_init__(self) -> None:
        self.position = np.full(self.batch_size, -1, dtype=np.int64)
        self.position[self.indices] = np.arange(self.indices.size)

    @property
    def size(self) -> int:
        """Rows in the graph."""
        return int(self.indices.size)

    def covers(self, idx_np: np.ndarray) -> bool:
        """Whether every sample of ``idx_np`` has a row in the graph."""
        return bool(np.all(self.position[idx_np] >= 0))

    def directions(self, v: torch.Tensor, idx_np: np.ndarray, n: int) -> tuple[torch.Tensor, Any]:
        """``v`` laid out on this graph's rows (zeros for idle samples), and the rows to keep."""
        if self.size == idx_np.size and np.array_equal(self.indices, idx_np):
            return v, None
        rows = torch.as_tensor(self.position[idx_np], device=v.device)
        full = v.new_zeros((self.size, n))
        full[rows] = v
        return full, rows


class GraphCache:
    r"""Active-set compaction for strategies that reuse a graph across products.

    A product for :math:`k` samples reuses a cached graph of :math:`m` samples
    (zero directions for the idle ones) when it covers them and
    :math:`k \ge` ``rebuild_fraction`` :math:`\cdot m`; otherwise a graph is
    built for those :math:`k` samples (and kept as the subset graph).  The
    full-batch graph from construction is never dropped.
    """

    def __init__(
        self, build: Callable[[np.ndarray], RowGraph], batch_size: int, rebuild_fraction: float
    ) -> None:
        self.build = build
        self.rebuild_fraction = rebuild_fraction
        self.full = build(np.arange(batch_size, dtype=np.int64))
        self.subset: RowGraph | None = None

    def graph_for(self, idx_np: np.ndarray) -> RowGraph:
        """Return a cached graph covering samples ``idx_np``, or build one for them."""
        k = idx_np.size
        distinct = np.unique(idx_np).size == k
        if distinct:
            for graph in (self.subset, self.full):  # the smaller one first
                if (
                    graph is not None
                    and graph.covers(idx_np)
                    and k >= self.rebuild_fraction * graph.size
                ):
                    return graph
        graph = self.build(idx_np)
        if distinct:
            self.subset = graph
        return graph

    def clear(self) -> None:
        """Drop the subset graph (the full graph stays)."""
        self.subset = None


class DoubleBackward:
    r"""Exact :math:`Hv = \nabla_x\langle g, v\rangle` through the cached graph of :math:`g`."""

    def __init__(self, point: Point, rebuild_fraction: float) -> None:
        self.point = point
        self.cache = GraphCache(self._build, point.batch_size, rebuild_fraction)

    def _build(self, idx_np: np.ndarray) -> RowGraph:
        """Forward and backward (``create_graph=True``) on samples ``idx_np``."""
        leaf, y_rows = self.point.leaf(idx_np)
        with torch.enable_grad():
            values = self.point.losses(leaf, y_rows)
            if values.requires_grad:
                (grad,) = torch.autograd.grad(
                    values.sum(), leaf, create_graph=True, allow_unused=True, materialize_grads=True
                )
            else:
                grad = torch.zeros_like(leaf)
        self.point.rows_built += int(idx_np.size)
        return RowGraph(idx_np, leaf, values.detach(), grad, batch_size=self.point.batch_size)

    def __call__(self, v: torch.Tensor, idx_np: np.ndarray) -> torch.Tensor:
        """Products for directions ``v`` ``(k, d)`` of samples ``idx_np``."""
        graph = self.cache.graph_for(idx_np)
        n = self.point.n
        directions, rows = graph.directions(v, idx_np, n)
        self.point.rows_evaluated += graph.size
        if not graph.grad.requires_grad:  # the gradient does not depend on x: H = 0
            return v.new_zeros((idx_np.size, n))
        (hv,) = torch.autograd.grad(
            graph.grad,
            graph.leaf,
            grad_outputs=directions.reshape(graph.grad.shape),
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        hv = hv.detach().reshape(graph.size, n)
        return hv if rows is None else hv.index_select(0, rows)


class GaussNewton:
    r"""Gauss–Newton products :math:`G_b v = J_b^\top S_b J_b v` through a cached linearization.

    :math:`J_b = \partial z_b/\partial x_b` is the Jacobian of the logits and
    :math:`S_b = \partial^2\ell/\partial z^2 = \operatorname{diag} p_b - p_b p_b^\top`
    the softmax cross-entropy's Hessian in the logits.  Because
    :math:`\nabla_x^2\ell = J^\top S J + \sum_k \frac{\partial\ell}{\partial z_k}\nabla_x^2 z_k`
    and :math:`\nabla_x^2 z_k = 0` almost everywhere for a piecewise-linear
    network (ReLU, max-pool), :math:`G_b = H_b` there; for a smooth network
    it drops the second term and is always positive semi-definite.

    The forward pass and the vector-Jacobian graph :math:`u \mapsto J^\top u`
    (built once with ``create_graph=True``) are reused by every product:
    :math:`Jv` is the derivative of :math:`\langle J^\top u, v\rangle` in
    :math:`u` (a backward pass through the cached VJP graph), and
    :math:`J^\top(SJv)` a backward pass through the cached forward graph.
    """

    def __init__(self, point: Point, rebuild_fraction: float) -> None:
        if point.loss != "ce":
            name = point.loss if isinstance(point.loss, str) else "a callable loss"
            raise ValueError(
                f"method='gauss-newton' needs the loss's Hessian in the logits, S; it is "
                f"implemented for loss='ce' (S = diag p - p p^T) and not for {name!r}: the CW "
                "margin is piecewise linear in the logits (S = 0 almost everywhere, so J^T S J "
                "= 0), and a callable's S is unknown. Use method='exact'."
            )
        self.point = point
        self.cache = GraphCache(self._build, point.batch_size, rebuild_fraction)

    def _build(self, idx_np: np.ndarray) -> RowGraph:
        leaf, y_rows = self.point.leaf(idx_np)
        with torch.enable_grad():
            logits = self.point.model(leaf)
            values = per_sample_loss(logits, y_rows, loss="ce")
            u = torch.zeros_like(logits, requires_grad=True)
            if logits.requires_grad:
                (grad,) = torch.autograd.grad(
                    values.sum(), leaf, retain_graph=True, allow_unused=True,
                    materialize_grads=True,
                )  # fmt: skip
                (jt_u,) = torch.autograd.grad(
                    logits, leaf, grad_outputs=u, create_graph=True, allow_unused=True,
                    materialize_grads=True,
                )  # fmt: skip
            else:  # no autograd graph (e.g. a lookup table): J = 0, as in DoubleBackward
                grad = torch.zeros_like(leaf)
                jt_u = torch.zeros_like(leaf)
        self.point.rows_built += int(idx_np.size)
        tensors = {
            "logits": logits,
            "u": u,
            "jt_u": jt_u,
            "p": torch.softmax(logits.detach(), dim=-1),
        }
        return RowGraph(
            idx_np, leaf, values.detach(), grad.detach(), tensors, batch_size=self.point.batch_size
        )

    def __call__(self, v: torch.Tensor, idx_np: np.ndarray) -> torch.Tensor:
        """Products for directions ``v`` ``(k, d)`` of samples ``idx_np``."""
        graph = self.cache.graph_for(idx_np)
        n = self.point.n
        directions, rows = graph.directions(v, idx_np, n)
        self.point.rows_evaluated += graph.size
        t = graph.tensors
        if not t["jt_u"].requires_grad:  # the logits do not depend on x: J = 0
            return v.new_zeros((idx_np.size, n))
        (jv,) = torch.autograd.grad(
            t["jt_u"], t["u"], grad_outputs=directions.reshape(graph.leaf.shape),
            retain_graph=True, allow_unused=True, materialize_grads=True,
        )  # fmt: skip
        p = t["p"]
        s_jv = p * jv - p * (p * jv).sum(dim=-1, keepdim=True)  # (diag p - p p^T) J v
        (gv,) = torch.autograd.grad(
            t["logits"], graph.leaf, grad_outputs=s_jv, retain_graph=True,
            allow_unused=True, materialize_grads=True,
        )  # fmt: skip
        gv = gv.detach().reshape(graph.size, n)
        return gv if rows is None else gv.index_select(0, rows)


class ForwardOverReverse:
    r"""Exact :math:`Hv = \frac{d}{ds} g(x + s v)\big|_{s=0}` by ``torch.func.jvp`` of ``grad``."""

    def __init__(self, point: Point) -> None:
        self.point = point

    def __call__(self, v: torch.Tensor, idx_np: np.ndarray) -> torch.Tensor:
        """Products for directions ``v`` ``(k, d)`` of samples ``idx_np``."""
        point = self.point
        idx = torch.as_tensor(idx_np, device=point.x.device)
        x_rows = point.x.index_select(0, idx)
        y_rows = point.y.index_select(0, idx)

        def loss_sum(inputs: torch.Tensor) -> torch.Tensor:
            return point.losses(inputs, y_rows).sum()

        # torch.func.grad differentiates w.r.t. the inputs only; the outer no_grad keeps
        # the result off the parameters' autograd graph.
        with torch.no_grad(), warnings.catch_warnings():
            # torch's forward-AD decompositions still call torch.jit.script on first use.
            warnings.filterwarnings(
                "ignore", message=".*torch.jit.script.*deprecated", category=DeprecationWarning
            )
            _, hv = torch.func.jvp(torch.func.grad(loss_sum), (x_rows,), (v.reshape(x_rows.shape),))
        point.rows_evaluated += int(idx_np.size)
        return hv.reshape(idx_np.size, point.n)


class FiniteDifference:
    r"""The papers' finite differences of gradients (:class:`krylovadv.FiniteDifferenceHVP`)."""

    def __init__(
        self, point: Point, gradient: torch.Tensor, scheme: str, eta: float | None
    ) -> None:
        self.point = point
        self.operator = FiniteDifferenceHVP(
            self._gradient,
            point.x.reshape(point.batch_size, point.n),
            eta=eta,
            scheme=scheme,
            grad_x=gradient,
            pass_indices=True,
        )

    def _gradient(self, points: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Input gradients at ``points`` ``(k, d)`` of samples ``indices``."""
        point = self.point
        k = int(points.shape[0])
        y_rows = point.y.index_select(0, indices.to(point.y.device))
        _, grad = _loss_and_gradient(
            point.model,
            points.reshape(k, *point.image_shape),
            y_rows,
            loss=point.loss,
            kappa=point.kappa,
            create_graph=False,
        )
        point.rows_evaluated += k
        return grad.reshape(k, point.n)

    def __call__(self, v: torch.Tensor, idx_np: np.ndarray) -> torch.Tensor:
        """Products for directions ``v`` ``(k, d)`` of samples ``idx_np``."""
        idx = torch.as_tensor(idx_np, device=self.point.x.device)
        return self.operator.matvec(v, idx)
