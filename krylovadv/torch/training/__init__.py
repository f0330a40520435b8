r"""Adversarial training: one trainer, the inner maximization as a plug-in.

Adversarial training solves Madry et al.'s saddle-point problem (Li et al.,
§3.2; Qian et al., eq. 15)

.. math:: \min_\theta\ \mathbb E_{(x, y)}\Bigl[\max_{\delta \in B_p(\varepsilon)}
          L\bigl(f_\theta(x + \delta), y\bigr)\Bigr],

alternating an *inner maximization* that builds :math:`x' = x + \delta` for
each training batch and an *outer* optimizer step on :math:`\theta`.  The
methods differ in the inner maximization and (TRADES, ensemble) in the outer
loss; each is one :class:`~krylovadv.torch.training.methods.TrainingMethod`
registered by name in :data:`METHODS` (one file per method under
:mod:`krylovadv.torch.training.methods`):

``natural``
    :math:`x' = x` (standard training, Qian et al., eq. 1).
``pgd-at``
    Madry et al.: :math:`x'` from PGD (:class:`~krylovadv.torch.attacks.PGD`,
    random start) on the :math:`\ell_\infty` or :math:`\ell_2` ball; loss
    :math:`\operatorname{CE}(f(x'), y)`.
``trades``
    Zhang et al. (2019), as in their reference code: from
    :math:`x' = x + 0.001\,\mathcal N(0, I)`, sign-gradient steps on
    :math:`\operatorname{KL}(f(x)\,\|\,f(x'))` projected to the
    :math:`\ell_\infty` ball (normalised-gradient steps for :math:`\ell_2`),
    the model in eval mode; outer loss
    :math:`\operatorname{CE}(f(x), y) + \beta\,\frac1B\sum_b
    \operatorname{KL}(f(x_b)\,\|\,f(x'_b))` (see :func:`trades_loss`).
``mixed``
    Li et al.'s mixed training on :math:`\ell_2` and :math:`\ell_\infty` PGD
    examples, ``mixed_mode="alternate"`` (even global steps
    :math:`\ell_\infty`, odd steps :math:`\ell_2`: the paper's "alternating")
    or ``"split"`` (within every batch, even positions :math:`\ell_\infty`,
    odd positions :math:`\ell_2`).
``trades-mix``
    TRADES with Li et al.'s mixed inner maximization: the TRADES KL ascent
    (``trades``) on the :math:`\ell_\infty` ball of ``mixed_eps_linf`` and
    the :math:`\ell_2` ball of ``mixed_eps_l2``, split as ``mixed_mode``
    splits ``mixed``'s PGD examples; the TRADES outer loss.
``soat``
    Qian et al.'s SOAT (eq. 15): :math:`x'` from
    :class:`~krylovadv.torch.attacks.SOAE`, loss :math:`\operatorname{CE}(f(x'), y)`.
``ensemble``
    Tramèr et al. (2018): for every batch a source is drawn (seeded) uniformly
    among the current model and the fixed pre-trained ``ensemble_sources``;
    :math:`x'` is FGSM (or PGD) on that source; loss
    :math:`(1 - w)\operatorname{CE}(f(x), y) + w\operatorname{CE}(f(x'), y)`.

Determinism: the data order of epoch :math:`e` is ``torch.randperm`` with a
``torch.Generator`` seeded by ``seed + e`` (:class:`DistributedSampler`'s
rule, for one process and for DDP alike), and every attack is seeded from
``(seed, global_step, rank)``; the learning rate and ε are pure functions of
the global step.  Together with checkpoints of the weights, the optimizer
state and the RNG states (:mod:`krylovadv.torch.checkpoint`), a run killed at
any moment resumes to the same final weights on the CPU.

The package, one module per concern (imports go down this list, never up):

- :mod:`~krylovadv.torch.training.methods`: the methods and their registry;
- :mod:`~krylovadv.torch.training.config`: :class:`TrainConfig`;
- :mod:`~krylovadv.torch.training.schedules`: learning rate, ε warm-up, seeds;
- :mod:`~krylovadv.torch.training.trades`: TRADES' KL, inner maximization and loss;
- :mod:`~krylovadv.torch.training.evaluation`: clean and PGD accuracy;
- :mod:`~krylovadv.torch.training.distributed`: the DDP process group;
- :mod:`~krylovadv.torch.training.sources`: ensemble training's fixed sources;
- :mod:`~krylovadv.torch.training.trainer`: :class:`Trainer` and :func:`train`.

From the shell: ``krylovadv train --help``; under ``torchrun
--nproc_per_node=N -m krylovadv train ...`` the same command trains with
DistributedDataParallel.
"""

from .config import RESUMABLE_CHANGES, SUBSET_SEED, TrainConfig
from .distributed import Distributed, setup_distributed
from .evaluation import evaluate_accuracy
from .methods import (
    METHODS,
    StepContext,
    TrainingMethod,
    adversarial_ce,
    register_method,
)
from .schedules import learning_rate, step_seed, warmup_eps
from .sources import load_source_model
from .trades import trades_kl, trades_loss, trades_perturb
from .trainer import Trainer, TrainResult, train

__all__ = [
    "METHODS",
    "RESUMABLE_CHANGES",
    "SUBSET_SEED",
    "Distributed",
    "StepContext",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingMethod",
    "adversarial_ce",
    "evaluate_accuracy",
    "learning_rate",
    "load_source_model",
    "register_method",
    "setup_distributed",
    "step_seed",
    "trades_kl",
    "trades_loss",
    "trades_perturb",
    "train",
    "warmup_eps",
]
