r"""Adversarial attacks on :math:`\ell_\infty` and :math:`\ell_2` balls, first and second order.

Every attack is one class in one module, built on the shared loop of
:mod:`~krylovadv.torch.attacks.base` with a threat model from
:mod:`~krylovadv.torch.attacks.norms`:

- :class:`FGSM`, :class:`PGD`: the gradient (Goodfellow et al.; Madry et al.);
- :class:`SO`: the Gaussian-smoothed gradient of the S-O attack (seed 000);
- :class:`SOPower`: its appendix variant, the dominant Hessian eigenvector by
  :func:`krylovadv.power_iteration`;
- :class:`SOAE`: :math:`H^{-1}\nabla_x L` by :func:`krylovadv.gmres` (seed 004).

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
from .apgd import APGD
from .base import DEFAULT_SEED, Attack, AttackResult, AttackTrace, StepState
from .fgsm import FGSM
from .norms import L2Norm, LinfNorm, Norm, get_norm
from .pgd import PGD
from .so import SO, PowerDirection, SOPower
from .soae import SOAE, NewtonDirection

__all__ = [
    "APGD",
    "DEFAULT_SEED",
    "FGSM",
    "PGD",
    "SO",
    "SOAE",
    "Attack",
    "AttackResult",
    "AttackTrace",
    "L2Norm",
    "LinfNorm",
    "NewtonDirection",
    "Norm",
    "PowerDirection",
    "SOPower",
    "StepState",
    "get_norm",
    "norms",
]
