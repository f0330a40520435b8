r"""Adversarial attacks on :math:`\ell_\infty` and :math:`\ell_2` balls, first and second order.

Every attack is one class in one module, built on the shared loop of
:mod:`~krylovadv.torch.attacks.base` with a threat model from
:mod:`~krylovadv.torch.attacks.norms`:

- :class:`FGSM`, :class:`PGD`: the gradient (Goodfellow et al.; Madry et al.);
- :class:`SO`: the Gaussian-smoothed gradient of the S-O attack (Li et al.);
- :class:`SOPower`: its appendix variant, the dominant Hessian eigenvector by
  :func:`krylovadv.power_iteration`;
- :class:`SOAE`: :math:`H^{-1}\nabla_x L` by :func:`krylovadv.gmres` (Qian et al.);
- :class:`APGD` (CE, CW or DLR loss), :class:`APGDT` (targeted DLR) and the
  gradient-free :class:`Square`, and :class:`Cascade` /
  :func:`first_order_cascade`, the worst case of several attacks in the
  AutoAttack protocol (the reproductions' strongest first-order baseline).

``attack(x, y)`` returns the adversarial examples; ``attack.run(x, y)``
returns an :class:`AttackResult` with per-sample success, a per-step trace and
the attack's diagnostics.

Examples
--------
>>> import torch
>>> from krylovadv.torch.attacks import PGD
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
>>> x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 3, (8,))
>>> result = PGD(model, eps=0.1, steps=5).run(x, y)
>>> len(result.trace), result.success.shape
(6, torch.Size([8]))
"""

from . import norms
from .apgd import APGD, APGDT
from .base import DEFAULT_SEED, Attack, AttackResult, AttackTrace, StepState
from .cascade import Cascade, first_order_cascade
from .fgsm import FGSM
from .norms import L2Norm, LinfNorm, Norm, get_norm
from .pgd import PGD
from .so import SO, PowerDirection, SOPower
from .soae import SOAE, NewtonDirection
from .square import Square

__all__ = [
    "APGD",
    "APGDT",
    "DEFAULT_SEED",
    "FGSM",
    "PGD",
    "SO",
    "SOAE",
    "Attack",
    "AttackResult",
    "AttackTrace",
    "Cascade",
    "L2Norm",
    "LinfNorm",
    "NewtonDirection",
    "Norm",
    "PowerDirection",
    "SOPower",
    "Square",
    "StepState",
    "first_order_cascade",
    "get_norm",
    "norms",
]
