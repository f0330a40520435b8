r"""A worst-case cascade of attacks: each attack runs only on the samples still robust.

The evaluation protocol of Croce & Hein's AutoAttack (Croce & Hein, ICML 2020),
with our own attacks: a sample counts as robust only if *every* attack of the
cascade fails on it; each attack is run only on the samples that the earlier
ones did not break, and each sample keeps the first adversarial example found.
:func:`first_order_cascade` builds the reproductions' "strongest first-order
baseline": APGD-CE, then APGD-T (targeted DLR over the top classes), then the
gradient-free Square attack, for ℓ∞ and ℓ2 alike.  It is *not* AutoAttack (no FAB-T, our
own implementations, our budgets); the reports say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .apgd import APGD, APGDT
from .base import eval_mode
from .square import Square

__all__ = ["Cascade", "first_order_cascade"]


class Cascade:
    r"""Run attacks in turn, each on the still-robust samples; keep the first success.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits (decides which samples are still robust).
    attacks : sequence of attacks
        Callables ``attack(x, y) -> x_adv`` with attributes ``eps`` and ``norm``,
        all with the same threat model.
    name : str
        Label for reports.

    Attributes
    ----------
    eps : float
        Common radius.
    norm : Norm
        Common threat model.
    broken_by : numpy.ndarray or None
        After a call: per sample, the index of the attack that broke it, -1 if
        none did (-2 for a clean misclassification).

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import APGD, Cascade
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 0])
    >>> attack = Cascade(model, [APGD(model, eps=0.1, steps=5), APGD(model, eps=0.1, loss="cw")])
    >>> bool((attack(x, y) - x).abs().max() <= 0.1 + 1e-6)
    True
    """

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        attacks: Sequence[Any],
        *,
        name: str = "Cascade",
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable; got {type(model).__name__}.")
        attacks = list(attacks)
        if not attacks:
            raise ValueError("attacks must hold at least one attack.")
        norms = {
            getattr(getattr(a, "norm", None), "name", getattr(a, "norm", None)) for a in attacks
        }
        epss = {float(a.eps) for a in attacks}
        if len(norms) != 1 or len(epss) != 1:
            raise ValueError(
                f"every attack of a cascade needs the same norm and eps; got norms {norms}, "
                f"eps {epss}."
            )
        self.model = model
        self.attacks = attacks
        self.name = name
        self.norm = attacks[0].norm
        self.eps = attacks[0].eps
        self.broken_by: Any = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return, per sample, the first attack's adversarial example that fools the model."""
        import numpy as np

        x = x.detach()
        x_adv = x.clone()
        with eval_mode(self.model), torch.no_grad():
            robust = self.model(x).argmax(dim=1) == y
        broken = np.where(robust.cpu().numpy(), -1, -2)
        for k, attack in enumerate(self.attacks):
            idx = torch.nonzero(robust).flatten()
            if idx.numel() == 0:
                break
            x_k = attack(x[idx], y[idx])
            with eval_mode(self.model), torch.no_grad():
                fooled = self.model(x_k).argmax(dim=1) != y[idx]
            hit = idx[fooled]
            x_adv[hit] = x_k[fooled].to(x_adv.dtype)
            robust[hit] = False
            broken[hit.cpu().numpy()] = k
        self.broken_by = broken
        return x_adv

    def __repr__(self) -> str:
        inner = ", ".join(repr(a) for a in self.attacks)
        return f"{type(self).__name__}({self.name!r}: {inner})"


def first_order_cascade(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    *,
    norm: str = "linf",
    eps: float,
    steps: int = 100,
    n_target_classes: int = 9,
    square_queries: int = 5000,
    seed: int | None = None,
) -> Cascade:
    r"""Build the strongest first-order baseline: APGD-CE → APGD-T (DLR) → Square.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier.
    norm : {"linf", "l2"}
        Threat model of every member (Square has its own update for each).
    eps : float
        Radius.
    steps : int
        Iterations of each APGD run (AutoAttack's standard: 100).
    n_target_classes : int
        Targets of APGD-T (standard: 9).
    square_queries : int
        Square's queries (standard: 5000); 0 skips Square.
    seed : int, optional
        Seed of every attack.

    Returns
    -------
    Cascade
    """
    attacks: list[Any] = [
        APGD(model, norm=norm, eps=eps, steps=steps, loss="ce", seed=seed),
        APGDT(model, norm=norm, eps=eps, steps=steps, n_target_classes=n_target_classes, seed=seed),
    ]
    parts = [f"APGD-CE {steps}", f"APGD-T {steps}×{n_target_classes}"]
    if square_queries > 0:
        attacks.append(Square(model, norm=norm, eps=eps, queries=square_queries, seed=seed))
        parts.append(f"Square {square_queries}")
    return Cascade(model, attacks, name="cascade(" + ", ".join(parts) + ")")
