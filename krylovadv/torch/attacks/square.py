r"""Square attack (Andriushchenko et al., ECCV 2020): score-based random search, no gradients.

From the paper 'Square Attack: a query-efficient black-box adversarial attack
via random search'.  Only the model's logits are used, so the attack is blind
to whatever a model does to its gradients: a model that resists gradient
attacks but not Square masks its gradients (see :mod:`krylovadv.torch.masking`).

:math:`\ell_\infty` version (Algorithm 2 of the paper): start from vertical
stripes :math:`x + \varepsilon s`, :math:`s \in \{-1, 1\}^{c \times 1 \times w}`;
at query :math:`i` draw a square window of side
:math:`h_i = \max(1, \operatorname{round}(\sqrt{p_i\, h w}))` at a uniformly
random position and set :math:`\delta` inside it to :math:`\pm\varepsilon` (one
random sign per channel); keep the new point if it lowers the margin loss
:math:`z_y - \max_{j \ne y} z_j`.  The fraction :math:`p_i` follows the paper's
piecewise-constant schedule (:func:`p_schedule`).  Each sample stops querying
once misclassified.

This module is written from the paper's description; it is not a port of the
authors' or torchattacks' code.  Only the :math:`\ell_\infty` threat model is
implemented (the paper's :math:`\ell_2` update redistributes mass between two
squares and is not implemented here: ``norm="l2"`` raises).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .base import Attack, StepState, _Records, _Run
from .norms import Norm

__all__ = ["Square", "p_schedule"]

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


def p_schedule(p_init: float, query: int, queries: int) -> float:
    r"""Fraction :math:`p_i` of pixels changed at ``query`` of ``queries``.

    The query index is rescaled to a budget of 10,000, then :math:`p_i =
    p_{init} / 2^j` with the paper's breakpoints 10, 50, 200, 500, 1000,
    2000, 4000, 6000, 8000 (:math:`p_{init}/512` after the last).

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


class Square(Attack):
    r"""Square attack, :math:`\ell_\infty` (Andriushchenko et al., 2020): margin random search.

    Distance Measure : Linf

    Shape : ``x`` :math:`(B, C, H, W)` in [0, 1]; ``y`` :math:`(B,)`; output like ``x``.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits (only its outputs are used).
    norm : {"linf"}
        Threat model (``"l2"`` is not implemented and raises).
    eps : float
        Radius ε.
    queries : int
        Model queries per sample after the initial one.  (Default: 5000)
    p_init : float
        Initial fraction of pixels per square, in (0, 1].  (Default: 0.8)
    restarts : int
        Independent runs, keeping each sample's worst case.  (Default: 1)
    seed : int, optional
        Seed of the stripes, windows and signs.  (Default: ``DEFAULT_SEED``)

    Notes
    -----
    The loss reported by :meth:`run` is the CW margin :math:`\max_{j\ne y} z_j - z_y`
    (clipped at 50); success is misclassification.  The output for a sample
    depends on the batch it is in (the random draws are shared), so it is
    reproducible for a given batch and seed, not batch-independent.

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import Square
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 2])
    >>> x_adv = Square(model, eps=0.1, queries=20)(x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
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
        if self.norm.name != "linf":
            raise ValueError(
                f"Square implements norm='linf' only; got {self.norm.name!r} "
                "(use APGD/APGDT for l2)."
            )
        if not 0 < p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1]; got {p_init!r}.")
        self.p_init = float(p_init)

    @property
    def queries(self) -> int:
        """Queries per sample after the first (``steps`` of the base class)."""
        return self.steps

    def _margin(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`z_y - \max_{j \ne y} z_j` (negative: misclassified)."""
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
        """One random-search run (Algorithm 2 of the paper) on the samples ``x``."""
        if x.ndim != 4:
            raise ValueError(f"Square needs images (B, C, H, W); got shape {tuple(x.shape)}.")
        B, C, H, W = (int(s) for s in x.shape)
        dev, dtype = x.device, x.dtype
        eps = self.eps
        signs = torch.randint(0, 2, (B, C, 1, W), generator=generator, device=dev)
        x_best = (x + eps * (2 * signs.to(dtype) - 1)).clamp(0, 1)
        margin = self._margin(x_best, y)
        records = _Records(self.steps, B, trace)
        for i in range(self.steps):
            active = torch.nonzero(margin > 0).flatten()
            if active.numel() == 0:
                break
            side = round(math.sqrt(self.p_schedule_at(i) * H * W))
            side = min(max(side, 1), H - 1, W - 1)
            top = int(torch.randint(0, H - side + 1, (1,), generator=generator, device=dev))
            left = int(torch.randint(0, W - side + 1, (1,), generator=generator, device=dev))
            xa, xc = x_best[active], x[active]
            delta = xa - xc
            window_signs = torch.randint(
                0, 2, (active.numel(), C, 1, 1), generator=generator, device=dev
            )
            delta[:, :, top : top + side, left : left + side] = eps * (
                2 * window_signs.to(dtype) - 1
            )
            x_new = (xc + delta).clamp(0, 1)
            m_new = self._margin(x_new, y[active])
            better = m_new < margin[active]
            keep = active[better]
            x_best[keep] = x_new[better]
            margin[keep] = m_new[better]
        loss = success = None
        if evaluate:
            final = StepState(self, x_best, y, self.steps, generator, np.arange(B))
            records.point(self.steps, final, gradient=trace)
            loss, success = final.loss, final.success
        return _Run(x_adv=x_best, loss=loss, success=success, trace=records.trace(), diagnostics={})

    def p_schedule_at(self, query: int) -> float:
        """Return :func:`p_schedule` of this attack at ``query``."""
        return p_schedule(self.p_init, query, self.steps)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(norm={self.norm.name!r}, eps={self.eps:g}, "
            f"queries={self.steps}, p_init={self.p_init:g}, restarts={self.restarts})"
        )
