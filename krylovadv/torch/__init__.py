"""PyTorch adapter of krylovadv: losses, input Hessians, attacks, training and evaluation.

The core package never imports this module; it depends on the core (the
:class:`~krylovadv.torch.hessian.InputHessian` is a core
:class:`~krylovadv.operators.LinearOperator`, so every core solver takes it).
"""

from . import attacks
from .attacks import FGSM, PGD, SO, SOAE, SOPower
from .hessian import InputHessian
from .losses import ce_loss, cw_loss, input_gradient, per_sample_loss

__all__ = [
    "FGSM",
    "PGD",
    "SO",
    "SOAE",
    "InputHessian",
    "SOPower",
    "attacks",
    "ce_loss",
    "cw_loss",
    "input_gradient",
    "per_sample_loss",
]
