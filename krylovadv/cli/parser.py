"""The argument parser of the ``krylovadv`` command: one function per command.

Nothing here imports torch (``krylovadv demo --solver-only`` and ``--help``
work without it); the handlers in :mod:`krylovadv.cli.commands` import the
torch adapter when they run.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

__all__ = ["build_parser", "zoo_names"]

#: The zoo's registry (read as JSON here: importing the zoo would import torch).
_REGISTRY = Path(__file__).resolve().parents[1] / "torch" / "weights" / "registry.json"

#: ``krylovadv attack``/``evaluate`` attack names (cli_support.ATTACKS; no torch import here).
ATTACK_NAMES = ("fgsm", "pgd", "apgd", "so", "so-power", "soae")

#: Training methods of ``krylovadv train`` (krylovadv.torch.training.METHODS; a test
#: keeps the two equal).
TRAIN_METHODS = ("natural", "pgd-at", "trades", "mixed", "trades-mix", "soat", "ensemble")

_EXIT_STATUS = "Exit status: 0 done, 2 a wrong option, 1 a failed run, 130 interrupted."


def zoo_names() -> list[str]:
    """Names of the zoo's registered models, read from its registry (sorted)."""
    try:
        return sorted(json.loads(_REGISTRY.read_text(encoding="utf-8"))["models"])
    except (OSError, ValueError, KeyError):  # a broken install: --help still works
        return []


# --- value types -------------------------------------------------------------------------


def _at_least(convert: Callable[[str], float], least: int, what: str) -> Callable[[str], float]:
    """Return an argparse type: ``convert(text)``, finite and at least ``least``."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
        if not (math.isfinite(value) and value >= least):
            raise argparse.ArgumentTypeError(f"must be {what}; got {text}")
        return value

    return parse


_positive_int = _at_least(int, 1, "an integer >= 1")
_nonnegative_int = _at_least(int, 0, "an integer >= 0")
_nonnegative_float = _at_least(float, 0, "a finite number >= 0")


# --- shared option texts -----------------------------------------------------------------


def _model_help() -> str:
    return (
        f"the model: a zoo name ({', '.join(zoo_names())}); "
        "ARCH:WEIGHTS.safetensors with ARCH one of madry-cnn, small-cnn, resnet18, "
        "wide-resnet (weights read with safetensors, never unpickled); a "
        ".safetensors file written by `krylovadv train` or the zoo (architecture "
        "in its header; checked against its sha256 sidecar FILE.json when there is one); "
        "or a TorchScript file PATH.pt (torch.jit.load runs code from the file: only "
        "load files you trust)"
    )


_DATA_HELP = (
    "the data: mnist10k (the embedded 10,000 MNIST digits, default), "
    "mnist-idx:DIR (MNIST IDX files in DIR) or cifar10:DIR (CIFAR-10 python "
    "batches in DIR); nothing is downloaded"
)
_EPS_NOTE = (
    "default: 0.3 for linf and 2.0 for l2 on MNIST, 8/255 and 0.5 on CIFAR-10; "
    "pixels are in [0, 1], so linf radii above 1 are refused"
)


def _add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="never show progress bars (default: shown only when stderr is a terminal)",
    )


def _add_sampling(parser: argparse.ArgumentParser, *, samples: int, what: str) -> None:
    parser.add_argument(
        "--samples",
        type=_positive_int,
        default=samples,
        help=f"size of the seeded random subset (default {samples}; at most the split's size)",
    )
    parser.add_argument("--data", default="mnist10k", metavar="DATA", help=_DATA_HELP)
    parser.add_argument(
        "--split",
        choices=("test", "train", "all"),
        default="test",
        help="split of the data (default test; all: mnist10k only)",
    )
    parser.add_argument(
        "--seed", type=_nonnegative_int, default=0, help=f"seed of {what} (default 0)"
    )


def _add_batch_and_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        help="samples per attack call (default 256)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


# --- the commands ------------------------------------------------------------------------


def _add_demo(commands: argparse._SubParsersAction, handler: Callable) -> None:
    demo = commands.add_parser(
        "demo",
        help="the main job: solver checks, then attacks on embedded MNIST digits",
        description="Run GMRES(30) against scipy on a convection-diffusion problem and a "
        "batch of rank-9 PSD systems shaped like MNIST input Hessians; then "
        "attack the zoo's natural and PGD-trained MNIST models with FGSM, "
        "PGD-linf/l2, S-O-linf/l2 and SOAE, print the tables and write a "
        "report folder (Markdown, JSON, PNG).",
    )
    demo.add_argument(
        "--grid",
        type=int,
        default=100,
        help="grid points per side of the convection-diffusion problem "
        "(default 100: 10,000 unknowns)",
    )
    demo.add_argument(
        "--batch",
        type=int,
        default=64,
        help="number of systems in the batched experiment (default 64)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the random systems, the digit subset and the attacks",
    )
    demo.add_argument(
        "--samples", type=int, default=200, help="MNIST test digits to attack (default 200)"
    )
    demo.add_argument(
        "--steps", type=int, default=20, help="iterations of the iterative attacks (default 20)"
    )
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    demo.add_argument(
        "--output", default="krylovadv-report", help="report folder (default ./krylovadv-report)"
    )
    _add_progress(demo)
    demo.add_argument(
        "--solver-only", action="store_true", help="run only the solver part (no torch needed)"
    )
    demo.set_defaults(handler=handler)


def _add_attack(commands: argparse._SubParsersAction, handler: Callable) -> None:
    attack = commands.add_parser(
        "attack",
        help="run one attack on a model and a data subset",
        description="Run one attack (FGSM, PGD, APGD, S-O, S-O with power iteration, SOAE) "
        "on a seeded random subset of a data set; print clean and robust accuracy, "
        "the number of examples that break the threat model, and a summary of "
        "the attack's diagnostics (e.g. SOAE's Krylov dimension); optionally "
        f"save the adversarial examples. {_EXIT_STATUS}",
    )
    attack.add_argument("--model", required=True, metavar="SPEC", help=_model_help())
    attack.add_argument(
        "--attack",
        required=True,
        metavar="NAME",
        help=f"{', '.join(ATTACK_NAMES)} (case-insensitive)",
    )
    attack.add_argument(
        "--norm", choices=("linf", "l2"), default="linf", help="threat model (default linf)"
    )
    attack.add_argument(
        "--eps",
        type=_nonnegative_float,
        default=None,
        help=f"radius of the ball, pixels in [0, 1] ({_EPS_NOTE})",
    )
    attack.add_argument(
        "--steps",
        type=_positive_int,
        default=20,
        help="iterations of the iterative attacks (default 20; FGSM takes one)",
    )
    _add_sampling(attack, samples=100, what="the subset and of the attack")
    _add_batch_and_device(attack)
    attack.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="save the examples: FILE.npz (numpy) or FILE.safetensors, "
        "arrays x_adv, x, y, clean_pred, adv_pred, valid (never pickle)",
    )
    _add_progress(attack)
    attack.set_defaults(handler=handler)


def _add_evaluate(commands: argparse._SubParsersAction, handler: Callable) -> None:
    evaluation = commands.add_parser(
        "evaluate",
        help="robust accuracy of a model under a list of attacks",
        description="Evaluate clean and robust accuracy under several attacks with "
        "krylovadv.torch.evaluate.evaluate: every adversarial example is checked "
        "(finite, in [0, 1], inside its ball); print the Markdown table with 95 % "
        "Wilson intervals and the worst case; write report.md and report.json. "
        "Ctrl-C saves the progress and prints the command that resumes it. "
        f"{_EXIT_STATUS}",
    )
    evaluation.add_argument("--model", required=True, metavar="SPEC", help=_model_help())
    items = ", ".join(ATTACK_NAMES)
    evaluation.add_argument(
        "--attacks",
        default="pgd-linf,pgd-l2,soae-linf",
        metavar="LIST",
        help=f"comma-separated NAME-NORM items, NAME one of {items} and NORM linf or l2 "
        "(default pgd-linf,pgd-l2,soae-linf)",
    )
    evaluation.add_argument(
        "--eps-linf", type=_nonnegative_float, default=None, help=f"linf radius ({_EPS_NOTE})"
    )
    evaluation.add_argument(
        "--eps-l2", type=_nonnegative_float, default=None, help=f"l2 radius ({_EPS_NOTE})"
    )
    evaluation.add_argument(
        "--steps",
        type=_positive_int,
        default=20,
        help="iterations of the iterative attacks (default 20)",
    )
    _add_sampling(evaluation, samples=200, what="the subset and of the attacks")
    protocol = evaluation.add_mutually_exclusive_group()
    protocol.add_argument(
        "--cascade",
        dest="cascade",
        action="store_true",
        default=True,
        help="AutoAttack protocol: each attack only on the samples every "
        "earlier attack failed on (default)",
    )
    protocol.add_argument(
        "--independent",
        dest="cascade",
        action="store_false",
        help="every attack on every clean-correct sample (per-attack "
        "accuracies comparable across attacks)",
    )
    evaluation.add_argument(
        "--resume",
        default=None,
        metavar="FILE.json",
        help="progress file: written after every batch and read on start to skip finished "
        "work; it records the run's fingerprint (weights, data, attacks, protocol, seeds, "
        "version) and a file of another run is refused. Without it the progress goes to "
        "DIR/progress.json of --output, else ./krylovadv-evaluate.progress.json, started "
        "afresh and removed when the run completes",
    )
    _add_batch_and_device(evaluation)
    evaluation.add_argument(
        "--output",
        default=None,
        metavar="DIR",
        help="write report.md and report.json to this folder (checked before the run)",
    )
    _add_progress(evaluation)
    evaluation.set_defaults(handler=handler)


def _add_train_hyperparameters(train: argparse.ArgumentParser) -> None:
    """Add the options of ``krylovadv train`` that set TrainConfig's hyper-parameters."""
    train.add_argument(
        "--method",
        default=None,
        choices=TRAIN_METHODS,
        help="natural; pgd-at (Madry); trades; mixed (linf/l2 PGD); trades-mix; soat "
        "(SOAE examples); ensemble (Tramer et al.; needs --ensemble-source); required "
        "unless in --config or --set",
    )
    train.add_argument(
        "--model",
        default=None,
        metavar="ARCH",
        help="architecture: madry-cnn, small-cnn, resnet18 or wide-resnet (default small-cnn)",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="passes over the training data (default 10; with --resume, a larger value "
        "extends the run)",
    )
    train.add_argument(
        "--eps",
        type=_nonnegative_float,
        default=None,
        help="training and evaluation radius (default 0.3)",
    )
    train.add_argument(
        "--norm",
        choices=("linf", "l2"),
        default=None,
        help="threat model of training and evaluation (default linf)",
    )
    train.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="steps of the inner maximization (default 10)",
    )
    train.add_argument(
        "--batch-size", type=_positive_int, default=None, help="batch size (default 128)"
    )
    train.add_argument(
        "--optimizer", choices=("sgd", "adam"), default=None, help="outer optimizer (default sgd)"
    )
    train.add_argument(
        "--lr", type=_nonnegative_float, default=None, help="learning rate (default 0.05)"
    )
    train.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=None,
        help="seed of the weights, the data order and the attacks (default 0)",
    )
    train.add_argument(
        "--train-size",
        type=_positive_int,
        default=None,
        help="train on a fixed random subset of this many digits (default all 8,000)",
    )
    train.add_argument(
        "--eval-subset",
        type=_nonnegative_int,
        default=None,
        help="held-out digits of the per-epoch evaluation (default 500; 0 disables it)",
    )
    train.add_argument(
        "--eval-steps",
        type=_positive_int,
        default=None,
        help="PGD steps of the per-epoch robust accuracy (default 20)",
    )


def _add_train_run_options(train: argparse.ArgumentParser) -> None:
    """Add where a training run lives, how it is configured and resumed, what it writes."""
    train.add_argument(
        "--ensemble-source",
        dest="ensemble_sources",
        action="append",
        default=None,
        metavar="SOURCE",
        help="a fixed source model of ensemble training: zoo name, "
        "checkpoint or .safetensors file (repeatable)",
    )
    train.add_argument("--device", default=None, help="torch device (default cpu)")
    train.add_argument(
        "--checkpoint-dir",
        default=None,
        metavar="DIR",
        help="where checkpoints are written (after every epoch; checked before the run); "
        "required unless in --config or --set",
    )
    train.add_argument(
        "--config",
        default=None,
        metavar="FILE.json",
        help="a JSON object of TrainConfig fields (named options and --set override it)",
    )
    train.add_argument(
        "--set",
        metavar="FIELD=VALUE",
        action="append",
        default=[],
        help="set any TrainConfig field (VALUE parsed as JSON if possible); repeatable",
    )
    train.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line (global_step, checkpoint, resumed_from, last_epoch) "
        "instead of the per-epoch report",
    )
    run = train.add_mutually_exclusive_group()
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest valid checkpoint of --checkpoint-dir, which must "
        "come from a run with the same settings (from scratch if there is none)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the checkpoints and history of another run in --checkpoint-dir and "
        "start afresh",
    )
    train.add_argument(
        "--output",
        default=None,
        metavar="WEIGHTS.safetensors",
        help="write the final weights here (safetensors, with a sha256 sidecar "
        "WEIGHTS.safetensors.json; load them with --model ARCH:WEIGHTS.safetensors)",
    )


def _add_train(commands: argparse._SubParsersAction, handler: Callable) -> None:
    train = commands.add_parser(
        "train",
        help="train a model (natural or adversarial) on the embedded MNIST digits",
        description="Train with krylovadv.torch.training.Trainer on the train split of the "
        "embedded MNIST digits: seeded, checkpointed after every epoch, resumable to the same "
        "final weights. Unset options take TrainConfig's defaults. Prints per-epoch clean and "
        "PGD robust accuracy on a fixed held-out subset. Under `torchrun --nproc_per_node=N -m "
        "krylovadv train` the same command trains with DDP. A folder holding another run is "
        "refused "
        "unless --resume (same settings) or --overwrite. --resume with a larger --epochs "
        "extends the run (the learning-rate schedule is recomputed for the new length and "
        f"stated). {_EXIT_STATUS}",
    )
    _add_train_hyperparameters(train)
    _add_train_run_options(train)
    _add_progress(train)
    train.set_defaults(handler=handler)


def _add_reproduce(commands: argparse._SubParsersAction, handler: Callable) -> None:
    reproduce = commands.add_parser(
        "reproduce",
        help="reproduce a table or figure of Li et al. or Qian et al., with a verdict",
        description="Run one experiment of Li et al. (On Norm-Agnostic Robustness of "
        "Adversarial Training) or Qian et al. (Hessian-Free Second-Order Adversarial "
        "Examples for Adversarial Learning) and write its table next to the paper's "
        "numbers, with 95 % confidence intervals and a one-line verdict (holds / does not "
        "hold / partly). quick: fewer digits, steps and grid values (so-table1 and "
        "soae-table1: about 10 CPU minutes per madry-cnn model; the others: minutes with the "
        "zoo's small models); full: the papers' protocols (a GPU: minutes on one H200). "
        "--list shows the experiments.",
    )
    reproduce.add_argument(
        "experiment",
        nargs="?",
        metavar="EXPERIMENT",
        help="experiment name, e.g. soae-krylov-dim (see --list)",
    )
    reproduce.add_argument("--list", action="store_true", help="list the experiments")
    reproduce.add_argument(
        "--scale",
        choices=("quick", "full"),
        default="quick",
        help="quick (default): sized for a CPU; full: the papers' protocols (GPU advised)",
    )
    reproduce.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=0,
        help="seed of sample subsets and attacks (default 0)",
    )
    reproduce.add_argument("--device", default="cpu", help="torch device (default cpu)")
    reproduce.add_argument(
        "--output",
        default="krylovadv-reproduce",
        help="parent folder of the report (default ./krylovadv-reproduce; checked before the run)",
    )
    _add_progress(reproduce)
    reproduce.set_defaults(handler=handler)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``krylovadv`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    from .. import __version__
    from .._cli_training import add_zoo_parser
    from . import commands as run

    parser = argparse.ArgumentParser(
        prog="krylovadv",
        description="Krylov solvers for second-order adversarial machine learning.",
    )
    parser.add_argument("--version", action="version", version=f"krylovadv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands, run.demo)
    _add_attack(commands, run.guarded(run.attack))
    _add_evaluate(commands, run.guarded(run.evaluate))
    _add_train(commands, run.guarded(run.train))
    add_zoo_parser(commands, _positive_int).set_defaults(handler=run.guarded(run.zoo))
    _add_reproduce(commands, run.guarded(run.reproduce))
    return parser
