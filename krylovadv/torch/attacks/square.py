r"""Square attack (Andriushchenko et al., ECCV 2020): score-based random search, no gradients.

From the paper 'Square Attack: a query-efficient black-box adversarial attack
via random search'.  Only the model's logits are used, so the attack is blind
to whatever a model does to its gradients: a model that resists gradient
attacks but not Square masks its gradients (see :mod:`krylovadv.torch.masking`).

Both threat models of the paper share one loop: a sample is queried once at
its clean point (a sample the model already misclassifies gets no further
query and is returned unchanged), once at the initial perturbation, then once
per step while it is still classified correctly; a proposal
:math:`x + \delta'` replaces the current best point only if it lowers the
margin loss :math:`z_y - \max_{j \ne y} z_j`.  The size of the changed square
follows the paper's piecewise-constant fraction :math:`p_i` of the pixels
(:func:`p_schedule`).

:math:`\ell_\infty` (the paper's Algorithm 2): start from vertical stripes
:math:`x + \varepsilon s`, :math:`s \in \{-1, 1\}^{c \times 1 \times w}`; at query
:math:`i` draw a window of side
:math:`h_i = \max(1, \operatorname{round}(\sqrt{p_i\, h w}))` at a uniformly
random position and set :math:`\delta` inside it to :math:`\pm\varepsilon` (one
random sign per channel).

:math:`\ell_2` (the paper's Algorithm 3): start from a centred :math:`5 \times 5`
grid of blocks, each filled with the paper's pattern :math:`\tilde\eta` (two
halves of opposite sign, each peaked at its centre; :func:`l2_pattern`) with a
random sign per block and channel, rescaled to :math:`\|\delta\|_2 = \varepsilon`.
At query :math:`i` draw two windows :math:`W_1, W_2` of odd side
:math:`h_i = \max(3, \operatorname{round}(\sqrt{p_i\, h w}))`; per channel, the
mass of :math:`\delta` on :math:`W_1 \cup W_2` plus the unused budget
:math:`(\varepsilon^2 - \|\delta\|_2^2)/c` is moved into :math:`W_1`, along the
old content of :math:`W_1` (normalised) plus a fresh :math:`\pm\tilde\eta`, and
:math:`W_2 \setminus W_1` is emptied.  The new perturbation has
:math:`\|\delta'\|_2 = \varepsilon` exactly (up to rounding); clipping
:math:`x + \delta'` to :math:`[0, 1]` only shrinks it, and the mass clipped away
comes back through the unused budget at the next query.

This module is written from the paper's description; it is not a port of the
authors' or torchattacks' code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .base import Attack, StepState, _Records, _Run
from .norms import Norm

__all__ = ["Square", "l2_pattern", "p_schedule"]

#: (last rescaled query, divisor of p_init) of the paper's schedule for 10,000 queries.
_SCHEDULE = (
    (10, 1),
    (50, 2),
    (200, 4),
    (500, 8),
    (1000, 16),
    (2000, 32),
    (4000, 64),
    (6000, 128),
    (8000, 256),
)

#: Blocks per image side of the :math:`\ell_2` initialisation (the paper's 5 x 5 grid).
_INIT_GRID = 5


def p_schedule(p_init: float, query: int, queries: int) -> float:
    r"""Fraction :math:`p_i` of pixels changed at ``query`` of ``queries``.

    The query index is rescaled to a budget of 10,000, then :math:`p_i =
    p_{init} / 2^j` with the paper's breakpoints 10, 50, 200, 500, 1000,
    2000, 4000, 6000, 8000 (:math:`p_{init}/512` after the last).  Both threat
    models use the same schedule.

    Examples
    --------
    >>> p_schedule(0.8, 0, 5000), p_schedule(0.8, 100, 5000)
    (0.8, 0.2)
    """
    rescaled = int(query / queries * 10000)
    for last, divisor in _SCHEDULE:
        if rescaled <= last:
            return p_init / divisor
    return p_init / 512


def _peak(rows: int, cols: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    r"""Return the paper's centre-peaked rectangle :math:`\eta^{(h_1, h_2)}` of unit norm.

    A pixel at Chebyshev distance :math:`d` from the centre
    :math:`(\lfloor h_1/2 \rfloor, \lfloor h_2/2 \rfloor)` gets
    :math:`\sum_{k=d}^{M} (k + 1)^{-2}`, :math:`M = \max(\lfloor h_1/2 \rfloor,
    \lfloor h_2/2 \rfloor)`: nested squares, each adding :math:`(k+1)^{-2}`, a
    cheap stand-in for a Gaussian bump (written here as a tail sum instead of
    the paper's loop over the squares).
    """
    if rows == 0 or cols == 0:
        return torch.zeros(rows, cols, dtype=dtype, device=device)
    r = torch.arange(rows, device=device) - rows // 2
    c = torch.arange(cols, device=device) - cols // 2
    dist = torch.maximum(r.abs()[:, None], c.abs()[None, :])
    top = max(rows // 2, cols // 2) + 1
    terms = 1.0 / torch.arange(1, top + 1, dtype=torch.float64, device=device) ** 2
    # tail[d] = sum_{k >= d} terms[k]: a reversed cumulative sum.
    tail = terms.flip(0).cumsum(0).flip(0)
    eta = tail[dist].to(dtype)
    return eta / torch.linalg.vector_norm(eta)


def l2_pattern(
    side: int,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    r"""Return the :math:`\ell_2` update pattern :math:`\tilde\eta` of a ``side`` x ``side`` square.

    The top :math:`\lfloor h/2 \rfloor` rows hold :math:`+\eta`, the other rows
    :math:`-\eta` (:func:`_peak` on each half); the square has unit
    :math:`\ell_2` norm and is transposed with probability 1/2.  Two halves of
    opposite sign make a change that is visible to a convolution at any scale
    while spending the budget near the two centres.

    Parameters
    ----------
    side : int
        :math:`h \ge 1`.
    generator : torch.Generator
        Draws the transposition (on ``device``).
    dtype : torch.dtype
        Floating dtype of the result.  (Default: float32)
    device : torch.device or str
        Device of the result.  (Default: "cpu")

    Returns
    -------
    torch.Tensor, shape (side, side)

    Examples
    --------
    >>> import torch
    >>> eta = l2_pattern(5, torch.Generator().manual_seed(0))
    >>> round(float(eta.norm()), 6), float(eta.sum().abs()) > 0
    (1.0, True)
    """
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ValueError(f"side must be an int >= 1; got {side!r}.")
    device = torch.device(device)
    half = side // 2
    eta = torch.cat(
        [
            _peak(half, side, dtype=dtype, device=device),
            -_peak(side - half, side, dtype=dtype, device=device),
        ]
    )
    eta = eta / torch.linalg.vector_norm(eta)
    # The halves' orientation is random so that neither direction is favoured.
    if bool(torch.rand((), generator=generator, device=device) < 0.5):
        eta = eta.T.contiguous()
    return eta


class Square(Attack):
    r"""Square attack (Andriushchenko et al., 2020): margin random search, ℓ∞ or ℓ2.

    Distance Measure : Linf, L2

    Shape : ``x`` :math:`(B, C, H, W)` in [0, 1], :math:`H, W \ge 2`; ``y``
    :math:`(B,)`; output like ``x``.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits (only its outputs are used).
    norm : {"linf", "l2"}
        Threat model (see the module docstring for each update).  (Default: "linf")
    eps : float
        Radius ε.
    queries : int
        Model queries per sample after the initial ones.  (Default: 5000)
    p_init : float
        Initial fraction of pixels per square, in (0, 1].  (Default: 0.8, the
        value of AutoAttack's Square for both norms)
    restarts : int
        Independent runs, keeping each sample's worst case.  (Default: 1)
    seed : int, optional
        Seed of the initialisation, windows, patterns and signs.
        (Default: ``DEFAULT_SEED``)

    Notes
    -----
    The loss reported by :meth:`run` is the CW margin :math:`\max_{j\ne y} z_j - z_y`
    (clipped at 50); success is misclassification.  ``run(...).diagnostics``
    holds ``"improved"``, shape ``(queries, B)``: 1 where the query was
    accepted, 0 where it was rejected, NaN where the sample was not queried (it
    was already misclassified); a sample's model queries are its non-NaN entries
    plus 2 (clean point and initialisation), or 1 if it was misclassified to
    begin with.  The output for a sample depends on the batch it is in (the
    windows and patterns are drawn once per query for the whole batch, as in the
    paper), so it is reproducible for a given batch and seed, not
    batch-independent.

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import Square
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 2])
    >>> x_adv = Square(model, eps=0.1, queries=20)(x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
    >>> x_adv = Square(model, norm="l2", eps=0.5, queries=20)(x, y)
    >>> bool((x_adv - x).flatten(1).norm(dim=1).max() <= 0.5 * (1 + 1e-6))
    True
    """

    name = "Square"
    stochastic_direction = True

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        norm: str | Norm = "linf",
        eps: float,
        queries: int = 5000,
        p_init: float = 0.8,
        restarts: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            model,
            norm=norm,
            eps=eps,
            steps=queries,
            alpha=0.0,
            loss="cw",
            random_start=False,
            restarts=restarts,
            early_stop=False,
            seed=seed,
        )
        if self.norm.name not in ("linf", "l2"):
            raise ValueError(
                f"norm must be 'linf' or 'l2' for Square; got {self.norm.name!r} "
                "(pass one of the two)."
            )
        if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
            raise ValueError(f"p_init must be a number in (0, 1]; got {p_init!r}.")
        self.p_init = float(p_init)

    @property
    def queries(self) -> int:
        """Queries per sample after the first two (``steps`` of the base class)."""
        return self.steps

    def _margin(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`z_y - \max_{j \ne y} z_j` (negative: misclassified); one query."""
        with torch.no_grad():
            logits = self.model(x)
        true = logits.gather(1, y[:, None])[:, 0]
        other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
        return true - other

    def _attack_once(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        *,
        trace: bool,
        evaluate: bool,
    ) -> _Run:
        """One random-search run (the paper's Algorithm 2 or 3) on the samples ``x``."""
        if x.ndim != 4 or min(int(x.shape[2]), int(x.shape[3])) < 2:
            raise ValueError(
                f"x must be images of shape (B, C, H, W) with H, W >= 2 for Square; got shape "
                f"{tuple(x.shape)} (reshape flat inputs to images, e.g. x.view(B, 1, 28, 28))."
            )
        B = int(x.shape[0])
        l2 = self.norm.name == "l2"
        # Query the clean points first: a sample the model already gets wrong is
        # returned as it is and costs no further query.
        margin = self._margin(x, y)
        x_best = x.clone()
        todo = torch.nonzero(margin > 0).flatten()
        if todo.numel() > 0:
            start = self._l2_start if l2 else self._linf_start
            x_init = start(x[todo], generator)
            x_best[todo] = x_init
            # The initialisation is kept whatever its margin, as in the paper.
            margin[todo] = self._margin(x_init, y[todo])
        propose = self._l2_proposal if l2 else self._linf_proposal
        improved = np.full((self.steps, B), np.nan)
        for i in self._steps(self.steps):
            active = torch.nonzero(margin > 0).flatten()
            if active.numel() == 0:
                break
            xc = x[active]
            x_new = propose(xc, x_best[active] - xc, i, generator)
            m_new = self._margin(x_new, y[active])
            better = m_new < margin[active]
            keep = active[better]
            x_best[keep] = x_new[better]
            margin[keep] = m_new[better]
            improved[i, active.cpu().numpy()] = better.cpu().numpy()
        records = _Records(self.steps, B, trace)
        loss = success = None
        if evaluate:
            final = StepState(self, x_best, y, self.steps, generator, np.arange(B))
            records.point(self.steps, final, gradient=trace)
            loss, success = final.loss, final.success
        return _Run(
            x_adv=x_best,
            loss=loss,
            success=success,
            trace=records.trace(),
            diagnostics={"improved": improved},
        )

    # -- l_inf -------------------------------------------------------------------------
    def _linf_start(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        r"""Vertical stripes :math:`x \pm \varepsilon`, one sign per channel and column."""
        B, C, _, W = (int(s) for s in x.shape)
        signs = torch.randint(0, 2, (B, C, 1, W), generator=generator, device=x.device)
        return (x + self.eps * (2 * signs.to(x.dtype) - 1)).clamp(0, 1)

    def _linf_proposal(
        self, x: torch.Tensor, delta: torch.Tensor, query: int, generator: torch.Generator
    ) -> torch.Tensor:
        r"""Set :math:`\delta` to :math:`\pm\varepsilon` on one random window (per channel)."""
        B, C, H, W = (int(s) for s in x.shape)
        side = round(math.sqrt(self.p_schedule_at(query) * H * W))
        side = min(max(side, 1), H - 1, W - 1)
        top, left = self._window(H, W, side, x.device, generator)
        signs = torch.randint(0, 2, (B, C, 1, 1), generator=generator, device=x.device)
        delta = delta.clone()
        delta[:, :, top : top + side, left : left + side] = self.eps * (2 * signs.to(x.dtype) - 1)
        return (x + delta).clamp(0, 1)

    # -- l_2 ---------------------------------------------------------------------------
    def _l2_start(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        r"""Start from a centred grid of :math:`\pm\tilde\eta` blocks, rescaled to norm ε.

        The grid has :data:`_INIT_GRID` blocks of side :math:`\lfloor h/5 \rfloor`
        per axis (fewer, of side 1, on images smaller than 5 pixels), centred in
        the image; each block gets its own (randomly transposed) pattern and a
        random sign per sample and channel.
        """
        B, C, H, W = (int(s) for s in x.shape)
        dev, dtype = x.device, x.dtype
        side = max(min(H, W) // _INIT_GRID, 1)
        n_rows, n_cols = min(_INIT_GRID, H // side), min(_INIT_GRID, W // side)
        patterns = torch.stack(
            [
                torch.stack(
                    [l2_pattern(side, generator, dtype=dtype, device=dev) for _ in range(n_cols)]
                )
                for _ in range(n_rows)
            ]
        )  # (n_rows, n_cols, side, side)
        signs = 2 * torch.randint(0, 2, (B, C, n_rows, n_cols), generator=generator, device=dev)
        blocks = (signs - 1).to(dtype)[:, :, :, :, None, None] * patterns  # (B, C, i, j, p, q)
        grid = blocks.permute(0, 1, 2, 4, 3, 5).reshape(B, C, n_rows * side, n_cols * side)
        top, left = (H - n_rows * side) // 2, (W - n_cols * side) // 2
        delta = torch.zeros_like(x)
        delta[:, :, top : top + n_rows * side, left : left + n_cols * side] = grid
        return (x + self._rescale(delta, exact=True)).clamp(0, 1)

    def _l2_proposal(
        self, x: torch.Tensor, delta: torch.Tensor, query: int, generator: torch.Generator
    ) -> torch.Tensor:
        r"""Move the mass on :math:`W_1 \cup W_2`, and the unused budget, into :math:`W_1`."""
        B, C, H, W = (int(s) for s in x.shape)
        dev, dtype = x.device, x.dtype
        side = max(round(math.sqrt(self.p_schedule_at(query) * H * W)), 3)
        side += 1 - side % 2  # odd, as in the paper, so the pattern's halves have a centre row
        side = min(side, H - 1, W - 1)
        t1, c1 = self._window(H, W, side, dev, generator)
        t2, c2 = self._window(H, W, side, dev, generator)
        w1 = (slice(None), slice(None), slice(t1, t1 + side), slice(c1, c1 + side))
        w2 = (slice(None), slice(None), slice(t2, t2 + side), slice(c2, c2 + side))
        union = torch.zeros(1, 1, H, W, dtype=torch.bool, device=dev)
        union[w1] = True
        union[w2] = True
        # Budget per channel: what the two windows hold now, plus an equal share of
        # what the whole perturbation leaves unused of eps^2 (e.g. lost to clipping).
        spare = (self.eps**2 - delta.pow(2).sum(dim=(1, 2, 3))).clamp_min(0)
        held = (delta * union).pow(2).sum(dim=(2, 3))  # (B, C)
        radius = (spare[:, None] / C + held).sqrt()
        # The new window content keeps the direction of the old one (normalised:
        # a window that held nothing contributes nothing) and adds a fresh pattern.
        tiny = torch.finfo(dtype).tiny  # only guards 0/0; any positive number would do
        old = delta[w1]
        old = old / _channel_norm(old).clamp_min(tiny)[:, :, None, None]
        signs = 2 * torch.randint(0, 2, (B, C, 1, 1), generator=generator, device=dev) - 1
        new = signs.to(dtype) * l2_pattern(side, generator, dtype=dtype, device=dev) + old
        new = new * (radius / _channel_norm(new).clamp_min(tiny))[:, :, None, None]
        delta = delta.clone()
        delta[w2] = 0
        delta[w1] = new
        return (x + self._rescale(delta, exact=False)).clamp(0, 1)

    def _rescale(self, delta: torch.Tensor, *, exact: bool) -> torch.Tensor:
        r"""Scale each :math:`\delta` to norm :math:`\varepsilon` (``exact``) or down to it.

        The :math:`\ell_2` update already has norm :math:`\varepsilon` in exact
        arithmetic; scaling only down removes the rounding excess without ever
        inflating a perturbation whose budget was not spent.
        """
        norms = torch.linalg.vector_norm(delta.flatten(1), dim=1)
        scale = self.eps / norms.clamp_min(torch.finfo(delta.dtype).tiny)
        if not exact:
            scale = scale.clamp_max(1.0)
        return delta * scale.view(-1, 1, 1, 1)

    # -- shared ------------------------------------------------------------------------
    @staticmethod
    def _window(
        H: int, W: int, side: int, device: torch.device, generator: torch.Generator
    ) -> tuple[int, int]:
        """Top-left corner of a ``side`` x ``side`` window, uniform over the image."""
        top = int(torch.randint(0, H - side + 1, (1,), generator=generator, device=device))
        left = int(torch.randint(0, W - side + 1, (1,), generator=generator, device=device))
        return top, left

    def p_schedule_at(self, query: int) -> float:
        """Return :func:`p_schedule` of this attack at ``query``."""
        return p_schedule(self.p_init, query, self.steps)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(norm={self.norm.name!r}, eps={self.eps:g}, "
            f"queries={self.steps}, p_init={self.p_init:g}, restarts={self.restarts})"
        )


def _channel_norm(t: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the two spatial axes of ``t`` ``(B, C, h, w)``, shape ``(B, C)``."""
    return torch.linalg.vector_norm(t, dim=(2, 3))
