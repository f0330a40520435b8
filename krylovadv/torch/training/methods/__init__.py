"""Training methods: one strategy object per file, registered by name in :data:`METHODS`.

Importing this package registers the built-in methods (``natural``, ``pgd-at``,
``trades``, ``mixed``, ``trades-mix``, ``soat``, ``ensemble``).  A new method
is one file: subclass :class:`TrainingMethod` and call :func:`register_method`
(see :class:`TrainingMethod`).
"""

# Registration order is the order METHODS lists the methods in: keep it by hand.
# isort: off
from . import natural, pgd_at, trades, mixed, trades_mix, soat, ensemble

# isort: on
from .base import (
    METHODS,
    StepContext,
    TrainingMethod,
    adversarial_ce,
    pgd_examples,
    register_method,
    split_by_norm,
)
from .ensemble import Ensemble
from .mixed import Mixed
from .natural import Natural
from .pgd_at import PGDAT
from .soat import SOAT
from .trades import TRADES
from .trades_mix import TRADESMix

__all__ = [
    "METHODS",
    "PGDAT",
    "SOAT",
    "TRADES",
    "Ensemble",
    "Mixed",
    "Natural",
    "StepContext",
    "TRADESMix",
    "TrainingMethod",
    "adversarial_ce",
    "ensemble",
    "mixed",
    "natural",
    "pgd_at",
    "pgd_examples",
    "register_method",
    "soat",
    "split_by_norm",
    "trades",
    "trades_mix",
]
