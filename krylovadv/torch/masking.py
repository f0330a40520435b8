r"""Gradient-masking diagnostics: three flags, each with the numbers behind it.

A robust accuracy is only as good as the attack that measured it.  When a
model's gradients are uninformative (shattered, saturated, stochastic), gradient
attacks stall and the model looks robust without being so.  Three standard
symptoms (Athalye, Carlini & Wagner, *Obfuscated Gradients Give a False Sense of
Security*, 2018; Carlini et al., *On Evaluating Adversarial Robustness*, 2019):

(a) **Black box beats white box** — a gradient-free attack (Square) or a
    noise-averaged gradient (S-O of Li et al.) leaves significantly fewer digits
    correct than the best white-box gradient attack;
(b) **No collapse at a large radius** — accuracy under a gradient attack does not
    go to about 0 % at a radius where every digit can be turned into any other
    (ℓ∞ ε = 0.5 on MNIST: a uniform grey image is reachable from every digit);
(c) **Unconverged** — accuracy keeps falling significantly with more steps or
    restarts.

Each flag compares counts with the 95 % intervals of
:mod:`krylovadv.torch.intervals`: a flag is raised only when the effect is
outside the interval.  The ``flag_*`` functions are pure (numbers in, flag
out); :func:`diagnose` runs the attacks that produce the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .attacks.base import eval_mode
from .intervals import difference_interval, wilson_interval

__all__ = [
    "LARGE_EPS",
    "MaskingFlag",
    "MaskingReport",
    "count_correct",
    "diagnose",
    "diagnose_evaluation",
    "flag_black_box",
    "flag_large_radius",
    "flag_unconverged",
]

#: Radius of flag (b) per norm (MNIST): ℓ∞ 0.5 reaches a uniform grey image from every
#: digit; ℓ2 10 covers most of the ℓ∞ 0.5 ball's reach on 784 pixels.
LARGE_EPS = {"linf": 0.5, "l2": 10.0}
#: Flag (b) is raised when the accuracy's 95 % lower bound exceeds this (not "about 0 %").
LARGE_RADIUS_FLOOR = 0.02


@dataclass(frozen=True)
class MaskingFlag:
    """One diagnostic.

    Attributes
    ----------
    name : {"a", "b", "c"}
        Which symptom (see the module docstring).
    flagged : bool
        Whether the symptom is present beyond its 95 % interval.
    detail : str
        One line with the numbers.
    numbers : dict
        The counts and intervals behind it.
    """

    name: str
    flagged: bool
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)


def flag_black_box(
    total: int, white_box: Mapping[str, int], black_box: Mapping[str, int]
) -> MaskingFlag:
    """Flag (a): a black-box or noise-averaged attack beats the best white-box one.

    Parameters
    ----------
    total : int
        Digits per count.
    white_box, black_box : mapping
        Attack name → digits still correct under it.

    Returns
    -------
    MaskingFlag
        Flagged if, for some black-box attack, the 95 % interval of
        (best white-box accuracy - its accuracy) lies above 0.
    """
    if not white_box or not black_box:
        raise ValueError("flag (a) needs at least one white-box and one black-box count.")
    best_name = min(white_box, key=lambda k: white_box[k])
    best = white_box[best_name]
    numbers: dict[str, Any] = {"total": total, "best_white_box": best_name, "white": best}
    parts, flagged = [], False
    for name, count in black_box.items():
        gap, low, high = difference_interval(best, total, count, total)
        numbers[name] = {"correct": count, "gap": gap, "low": low, "high": high}
        flagged |= low > 0
        parts.append(f"{name} {100 * gap:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]")
    detail = (
        f"best white-box {best_name} {100 * best / total:.1f} %; black-box/noise gain "
        + ", ".join(parts)
        + " points"
    )
    return MaskingFlag("a", flagged, detail, numbers)


def flag_large_radius(correct: int, total: int, eps: float, norm: str) -> MaskingFlag:
    """Flag (b): accuracy at a large radius does not reach about 0 %.

    Flagged when the 95 % Wilson lower bound of the accuracy exceeds
    :data:`LARGE_RADIUS_FLOOR`.
    """
    low, high = wilson_interval(correct, total)
    flagged = low > LARGE_RADIUS_FLOOR
    detail = (
        f"{norm} ε = {eps:g}: {100 * correct / max(total, 1):.1f} % "
        f"[{100 * low:.1f}, {100 * high:.1f}] (about 0 % expected)"
    )
    numbers = {"correct": correct, "total": total, "eps": eps, "low": low, "high": high}
    return MaskingFlag("b", flagged, detail, numbers)


def flag_unconverged(
    short_correct: int, long_correct: int, total: int, *, short: str, long: str
) -> MaskingFlag:
    """Flag (c): a longer attack (more steps or restarts) is significantly stronger.

    Flagged when the 95 % interval of (short accuracy - long accuracy) lies above 0.
    """
    gap, low, high = difference_interval(short_correct, total, long_correct, total)
    detail = (
        f"{short} {100 * short_correct / total:.1f} % → {long} {100 * long_correct / total:.1f} %"
        f" ({100 * gap:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] points)"
    )
    numbers = {"short": short_correct, "long": long_correct, "gap": gap, "low": low, "high": high}
    return MaskingFlag("c", low > 0, detail, numbers)


@dataclass
class MaskingReport:
    """The three flags of one model.

    Attributes
    ----------
    flags : list of MaskingFlag
    total : int
        Digits diagnosed.
    """

    flags: list[MaskingFlag]
    total: int

    @property
    def any(self) -> bool:
        """Whether any flag is raised."""
        return any(f.flagged for f in self.flags)

    def summary(self) -> str:
        """One line per flag: raised or not, with its numbers."""
        return "; ".join(
            f"({f.name}) {'FLAG' if f.flagged else 'ok'}: {f.detail}" for f in self.flags
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"total": self.total, "flags": [asdict(f) for f in self.flags]}


def count_correct(
    model: torch.nn.Module,
    attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 250,
) -> int:
    """Return how many of ``(x, y)`` the model still classifies correctly under ``attack``.

    A clean error counts as an attack success (the attack is run on every digit).
    """
    correct = 0
    with eval_mode(model):
        for start in range(0, int(x.shape[0]), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            x_adv = attack(xb, yb)
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct


def diagnose(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "linf",
    eps: float,
    white_box: Mapping[str, int] | None = None,
    noise_averaged: Mapping[str, int] | None = None,
    steps: int = 20,
    long_steps: int = 100,
    long_restarts: int = 1,
    square_queries: int = 1000,
    large_eps: float | None = None,
    seed: int = 0,
    batch_size: int = 250,
) -> MaskingReport:
    """Run the attacks behind the three flags on ``(x, y)`` and return the flags.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier (eval mode is set for the attacks).
    x, y : torch.Tensor
        Digits and labels (counts are over all of them; a clean error counts
        as broken).
    norm : {"linf", "l2"}
        Threat model.
    eps : float
        Radius of flags (a) and (c).
    white_box : mapping, optional
        Counts of other white-box gradient attacks on the same digits (added to
        APGD-CE with ``steps`` iterations for the "best white-box" of flag (a)).
    noise_averaged : mapping, optional
        Counts of noise-averaged attacks (S-O) on the same digits, compared in
        flag (a) like the black-box Square.
    steps, long_steps, long_restarts : int
        APGD-CE budgets of flag (c): ``steps`` × 1 restart against
        ``long_steps`` × ``long_restarts``.
    square_queries : int
        Square's queries for flag (a) (for either norm); 0 leaves Square out.
    large_eps : float, optional
        Radius of flag (b) (default :data:`LARGE_EPS`).
    seed : int
        Seed of every attack.
    batch_size : int
        Digits per attack call.

    Returns
    -------
    MaskingReport
    """
    from .attacks import APGD, Square

    total = int(x.shape[0])

    def count(attack: Any) -> int:
        return count_correct(model, attack, x, y, batch_size=batch_size)

    short = count(APGD(model, norm=norm, eps=eps, steps=steps, seed=seed))
    long = count(
        APGD(model, norm=norm, eps=eps, steps=long_steps, restarts=long_restarts, seed=seed)
    )
    white = {f"APGD-CE {steps}": short, f"APGD-CE {long_steps}×{long_restarts}": long}
    white.update(white_box or {})
    black = dict(noise_averaged or {})
    if square_queries > 0:
        black[f"Square {square_queries}"] = count(
            Square(model, norm=norm, eps=eps, queries=square_queries, seed=seed)
        )
    flags = []
    if black:
        flags.append(flag_black_box(total, white, black))
    radius = LARGE_EPS[norm] if large_eps is None else large_eps
    large = count(APGD(model, norm=norm, eps=radius, steps=steps, seed=seed))
    flags.append(flag_large_radius(large, total, radius, norm))
    flags.append(
        flag_unconverged(
            short,
            long,
            total,
            short=f"APGD-CE {steps}",
            long=f"APGD-CE {long_steps}×{long_restarts}",
        )
    )
    return MaskingReport(flags, total)


def diagnose_evaluation(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: list[tuple[str, Any]],
    report: Any,
    options: bool | dict[str, Any],
) -> dict[str, Any]:
    """Run :func:`diagnose` for :func:`krylovadv.torch.evaluate.evaluate` (``masking=``).

    The threat model is the first attack's; the counts of the evaluated gradient
    attacks (not Square) join the white-box reference of flag (a) when the
    evaluation ran every attack on every digit (``cascade=False``).
    """
    from .attacks import Square
    from .attacks.norms import get_norm

    kwargs = dict(options) if isinstance(options, dict) else {}
    _, first = attacks[0]
    white = {}
    if not report.cascade:
        white = {
            name: int(report.per_attack_robust[name].sum())
            for name, attack in attacks
            if not isinstance(attack, Square)
        }
    kwargs.setdefault("white_box", white)
    result = diagnose(model, x, y, norm=get_norm(first.norm).name, eps=float(first.eps), **kwargs)
    return result.to_dict() | {"summary": result.summary()}
