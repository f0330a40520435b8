"""Command-line interface: ``krylovadv <command>`` (a thin layer over the library)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ._cli_training import add_zoo_parser, run_zoo, train_values

__all__ = ["main"]


def _format_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    body = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_solver_demo

    print("== Solvers: krylovadv.gmres against scipy, batched input-Hessian-like systems ==")
    rows = run_solver_demo(grid=args.grid, batch=args.batch, seed=args.seed)
    print(
        _format_table(
            rows, ["experiment", "solver", "time_s", "matvecs", "relative_residual", "note"]
        )
    )
    if args.solver_only:
        return 0
    try:
        from .torch.demo import run_attack_demo
    except ImportError as error:  # the core installs without torch
        print(
            f"krylovadv: error: the attack demo needs torch ({error}); install "
            "krylovadv[torch] or pass --solver-only",
            file=sys.stderr,
        )
        return 1
    print("\n== Attacks on the embedded MNIST test split (zoo models) ==")
    result = run_attack_demo(
        samples=args.samples,
        steps=args.steps,
        seed=args.seed,
        device=args.device,
        output=args.output,
        progress=not args.no_progress,
    )
    print(result.to_markdown())
    if result.folder is not None:
        print(f"\nReport written to {result.folder}/ (report.md, report.json, *.png)")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {value}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0; got {text}")
    return value


def _error(command: str, message: str, status: int) -> int:
    print(f"krylovadv {command}: error: {message}", file=sys.stderr)
    return status


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn a wrong value into exit 2 and a failed run into exit 1, with a message."""

    def run(args: argparse.Namespace) -> int:
        try:
            from .torch.cli_support import UsageError
        except ImportError as error:  # the core installs without torch
            return _error(
                args.command, f"this command needs torch ({error}); install krylovadv[torch]", 1
            )
        try:
            return handler(args)
        except UsageError as error:
            return _error(args.command, str(error), 2)
        except (OSError, ValueError, RuntimeError) as error:
            return _error(args.command, f"{type(error).__name__}: {error}", 1)

    return run


def _attack(args: argparse.Namespace) -> int:
    from .torch import cli_support as cs

    name = args.attack.lower()
    if name not in cs.ATTACKS:
        raise cs.UsageError(
            "--attack", f"unknown attack {args.attack!r}; valid names: {', '.join(cs.ATTACKS)}."
        )
    if args.output is not None and Path(args.output).suffix not in (".npz", ".safetensors"):
        raise cs.UsageError(
            "--output",
            f"{args.output}: use a .npz or .safetensors file (pickled .pt files are not written).",
        )
    cs.check_device(args.device)
    model, origin = cs.load_model(args.model, device=args.device)
    data = cs.load_data(args.data, split=args.split, samples=args.samples, seed=args.seed)
    eps = args.eps if args.eps is not None else cs.default_eps(args.data, args.norm)
    attack = cs.build_attack(name, model, norm=args.norm, eps=eps, steps=args.steps, seed=args.seed)
    outcome = cs.run_attack(attack, model, data, device=args.device, batch_size=args.batch_size)
    steps = 1 if name == "fgsm" else args.steps
    print(f"model: {origin}; data: {data.name} ({len(data)} samples, seed {args.seed})")
    print(
        f"attack: {name} {args.norm}, eps = {eps:g}, {steps} step(s), seed {args.seed}, "
        f"{outcome.seconds:.1f} s"
    )
    print(f"clean accuracy:  {outcome.clean_accuracy:.4f}")
    print(f"robust accuracy: {outcome.robust_accuracy:.4f}")
    invalid = int((~outcome.valid).sum())
    print(f"invalid examples (non-finite, outside [0, 1] or the ball): {invalid}")
    summary = cs.attack_summary(outcome)
    if summary:
        print("diagnostics (over steps and samples):")
        for line in summary:
            print(f"  {line}")
    if args.output is not None:
        meta = {
            "model": origin,
            "data": data.name,
            "attack": name,
            "norm": args.norm,
            "eps": eps,
            "steps": steps,
            "seed": args.seed,
        }
        path = cs.save_examples(args.output, outcome, meta)
        print(f"adversarial examples written to {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .torch import cli_support as cs
    from .torch.evaluate import evaluate

    cs.check_device(args.device)
    model, origin = cs.load_model(args.model, device=args.device)
    eps = {
        norm: value if value is not None else cs.default_eps(args.data, norm)
        for norm, value in (("linf", args.eps_linf), ("l2", args.eps_l2))
    }
    attacks = cs.parse_attack_list(args.attacks, model, eps=eps, steps=args.steps, seed=args.seed)
    data = cs.load_data(args.data, split=args.split, samples=args.samples, seed=args.seed)
    meta = {
        "model": origin,
        "data": data.name,
        "samples": len(data),
        "seed": args.seed,
        "steps": args.steps,
        "eps": eps,
    }
    try:
        report = evaluate(
            model,
            data,
            attacks,
            batch_size=args.batch_size,
            device=args.device,
            cascade=args.cascade,
            resume=args.resume,
            progress=not args.no_progress,
            meta=meta,
        )
    except ValueError as error:
        if "resume file" in str(error):
            raise cs.UsageError("--resume", str(error)) from error
        raise
    print(report.to_markdown())
    if args.output is not None:
        folder = cs.write_report(report, args.output)
        print(f"\nReport written to {folder}/ (report.md, report.json)")
    return 0


_TRAIN_OPTIONS = {
    "model": "--model",
    "method": "--method",
    "epochs": "--epochs",
    "eps": "--eps",
    "norm": "--norm",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "optimizer": "--optimizer",
    "steps": "--steps",
    "seed": "--seed",
    "train_size": "--train-size",
    "eval_subset": "--eval-subset",
    "eval_steps": "--eval-steps",
    "device": "--device",
    "checkpoint_dir": "--checkpoint-dir",
    "ensemble_sources": "--ensemble-source",
}


def _train(args: argparse.Namespace) -> int:
    import logging

    from .torch.cli_support import UsageError, check_device
    from .torch.training import TrainConfig, Trainer

    if args.device is not None:
        check_device(args.device)
    if args.output is not None and Path(args.output).suffix != ".safetensors":
        raise UsageError("--output", f"{args.output}: the weights file must end in .safetensors.")
    values, origin = train_values(args, _TRAIN_OPTIONS)
    try:
        config = TrainConfig.from_dict(values)
    except ValueError as error:
        text = str(error)
        named = re.search(r"TrainConfig\.(\w+)", text)  # the field the message names
        if named is not None:
            field = named.group(1)
            option = origin.get(field) or _TRAIN_OPTIONS.get(field, "--set")
        else:  # unknown field names: they came from --set or --config
            option = "--set" if args.set else "--config"
        raise UsageError(option, text) from error
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    trainer = Trainer(config, progress=not args.no_progress)
    try:
        result = trainer.fit(resume=args.resume)
        if not trainer.dist.is_main:  # under torchrun only rank 0 reports and writes
            return 0
    finally:
        trainer.close()
    if args.output is not None:
        from .torch.pretrained import save_weights_file

        save_weights_file(args.output, result.model, config=config)
    if args.json:
        summary = {
            "global_step": result.global_step,
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            "resumed_from": result.resumed_from,
            "last_epoch": result.history[-1] if result.history else None,
            "output": args.output,
        }
        print(json.dumps(summary, sort_keys=True))
        return 0
    if result.resumed_from is not None:
        print(f"resumed from {result.checkpoint} (global step {result.resumed_from})")
    print(
        f"{config.method} training of {config.model}: {config.epochs} epoch(s), "
        f"{config.norm} eps = {config.eps:g}, seed {config.seed}"
    )
    for record in result.history:

        def show(value: object) -> str:
            return "-" if value is None else f"{value:.4f}"

        print(
            f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, "
            f"train acc {record['train_acc']:.4f}, clean acc {show(record['clean_acc'])}, "
            f"robust acc {show(record['robust_acc'])} (PGD-{config.eval_steps} on "
            f"{record['eval_count']} test digits), {record['time_s']:.1f} s"
        )
    print(f"checkpoint: {result.checkpoint}")
    if args.output is not None:
        print(f"weights written to {args.output} (load with --model {config.model}:{args.output})")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from .torch.reproduce import EXPERIMENTS, available, run_experiment

    if args.list or args.experiment is None:
        ready = set(available())
        for name, (_, title) in EXPERIMENTS.items():
            state = "" if name in ready else "  [not implemented yet]"
            print(f"{name:16s} {title}{state}")
        return 0 if args.list else _error("reproduce", "name an EXPERIMENT (or --list)", 2)
    if args.experiment not in EXPERIMENTS:
        return _error(
            "reproduce",
            f"unknown experiment {args.experiment!r}; choose one of {', '.join(EXPERIMENTS)}",
            2,
        )
    try:
        result = run_experiment(
            args.experiment,
            scale=args.scale,
            seed=args.seed,
            device=args.device,
            output=args.output,
            progress=not args.no_progress,
        )
    except NotImplementedError as error:
        return _error("reproduce", str(error), 1)
    print(result.to_markdown())
    print(f"Report written to {args.output}/{args.experiment}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``krylovadv`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="krylovadv",
        description="Krylov solvers for second-order adversarial machine learning.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.add_argument(
        "--solver-only", action="store_true", help="run only the solver part (no torch needed)"
    )
    demo.set_defaults(handler=_demo)

    model_help = (
        "the model: a zoo name (natural, pgd-linf, pgd-l2, mixed, trades, soat); "
        "ARCH:WEIGHTS.safetensors with ARCH one of madry-cnn, small-cnn, resnet18, "
        "wide-resnet (weights read with safetensors, never unpickled); a "
        ".safetensors file written by `krylovadv train` or the zoo (architecture "
        "in its header); or a TorchScript file PATH.pt (torch.jit.load runs code "
        "from the file: only load files you trust)"
    )
    data_help = (
        "the data: mnist10k (the embedded 10,000 MNIST digits, default), "
        "mnist-idx:DIR (MNIST IDX files in DIR) or cifar10:DIR (CIFAR-10 python "
        "batches in DIR); nothing is downloaded"
    )
    eps_note = "default: 0.3 for linf and 2.0 for l2 on MNIST, 8/255 and 0.5 on CIFAR-10"

    attack = commands.add_parser(
        "attack",
        help="run one attack on a model and a data subset",
        description="Run one attack (FGSM, PGD, S-O, S-O with power iteration, SOAE) on a "
        "seeded random subset of a data set; print clean and robust accuracy, "
        "the number of examples that break the threat model, and a summary of "
        "the attack's diagnostics (e.g. SOAE's Krylov dimension); optionally "
        "save the adversarial examples. Exit status: 0 done, 2 a wrong "
        "option, 1 a failed run.",
    )
    attack.add_argument("--model", required=True, metavar="SPEC", help=model_help)
    attack.add_argument(
        "--attack",
        required=True,
        metavar="NAME",
        help="fgsm, pgd, so, so-power or soae (case-insensitive)",
    )
    attack.add_argument(
        "--norm", choices=("linf", "l2"), default="linf", help="threat model (default linf)"
    )
    attack.add_argument(
        "--eps",
        type=_nonnegative_float,
        default=None,
        help=f"radius of the ball, pixels in [0, 1] ({eps_note})",
    )
    attack.add_argument(
        "--steps",
        type=_positive_int,
        default=20,
        help="iterations of the iterative attacks (default 20; FGSM takes one)",
    )
    attack.add_argument(
        "--samples",
        type=_positive_int,
        default=100,
        help="size of the seeded random subset to attack (default 100)",
    )
    attack.add_argument("--data", default="mnist10k", metavar="DATA", help=data_help)
    attack.add_argument(
        "--split",
        choices=("test", "train", "all"),
        default="test",
        help="split of the data (default test; all: mnist10k only)",
    )
    attack.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=0,
        help="seed of the subset and of the attack (default 0)",
    )
    attack.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        help="samples per attack call (default 256)",
    )
    attack.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    attack.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="save the examples: FILE.npz (numpy) or FILE.safetensors, "
        "arrays x_adv, x, y, clean_pred, adv_pred, valid (never pickle)",
    )
    attack.set_defaults(handler=_guarded(_attack))

    evaluation = commands.add_parser(
        "evaluate",
        help="robust accuracy of a model under a list of attacks",
        description="Evaluate clean and robust accuracy under several attacks with "
        "krylovadv.torch.evaluate.evaluate: every adversarial example is checked "
        "(finite, in [0, 1], inside its ball); print the Markdown table with 95 %% "
        "Wilson intervals and the worst case; write report.md and report.json. "
        "Exit status: 0 done, 2 a wrong option, 1 a failed run.",
    )
    evaluation.add_argument("--model", required=True, metavar="SPEC", help=model_help)
    evaluation.add_argument(
        "--attacks",
        default="pgd-linf,pgd-l2,soae-linf",
        metavar="LIST",
        help="comma-separated NAME-NORM items, NAME one of fgsm, pgd, so, "
        "so-power, soae and NORM linf or l2 (default "
        "pgd-linf,pgd-l2,soae-linf)",
    )
    evaluation.add_argument(
        "--eps-linf", type=_nonnegative_float, default=None, help=f"linf radius ({eps_note})"
    )
    evaluation.add_argument(
        "--eps-l2", type=_nonnegative_float, default=None, help=f"l2 radius ({eps_note})"
    )
    evaluation.add_argument(
        "--steps",
        type=_positive_int,
        default=20,
        help="iterations of the iterative attacks (default 20)",
    )
    evaluation.add_argument(
        "--samples",
        type=_positive_int,
        default=200,
        help="size of the seeded random subset (default 200)",
    )
    evaluation.add_argument("--data", default="mnist10k", metavar="DATA", help=data_help)
    evaluation.add_argument(
        "--split",
        choices=("test", "train", "all"),
        default="test",
        help="split of the data (default test)",
    )
    evaluation.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=0,
        help="seed of the subset and of the attacks (default 0)",
    )
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
        help="progress file, written after every batch and read on start to skip finished work",
    )
    evaluation.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        help="samples per attack call (default 256)",
    )
    evaluation.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    evaluation.add_argument(
        "--output",
        default=None,
        metavar="DIR",
        help="write report.md and report.json to this folder",
    )
    evaluation.add_argument("--no-progress", action="store_true", help="hide progress bars")
    evaluation.set_defaults(handler=_guarded(_evaluate))

    train = commands.add_parser(
        "train",
        help="train a model (natural or adversarial) on the embedded MNIST digits",
        description="Train with krylovadv.torch.training.Trainer on the train split of the "
        "embedded MNIST digits: seeded, checkpointed after every epoch, "
        "resumable to the same final weights. Unset options take "
        "TrainConfig's defaults. Prints per-epoch clean and PGD robust accuracy "
        "on a fixed held-out subset. Under `torchrun --nproc_per_node=N -m krylovadv "
        "train` the same command trains with DDP. Exit status: 0 done, 2 a wrong "
        "option, 1 a failed run.",
    )
    train.add_argument(
        "--method",
        default=None,
        choices=("natural", "pgd-at", "trades", "mixed", "trades-mix", "soat", "ensemble"),
        help="natural; pgd-at (Madry); trades; mixed (linf/l2 PGD); trades-mix; soat "
        "(SOAE examples); ensemble (Tramer et al.; needs "
        "--ensemble-source); required unless in --config or --set",
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
        help="passes over the training data (default 10)",
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
        help="where checkpoints are written (after every epoch); required unless in "
        "--config or --set",
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
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest valid checkpoint of --checkpoint-dir "
        "(from scratch if there is none)",
    )
    train.add_argument(
        "--output",
        default=None,
        metavar="WEIGHTS.safetensors",
        help="write the final weights here (safetensors; load them with "
        "--model ARCH:WEIGHTS.safetensors)",
    )
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train.set_defaults(handler=_guarded(_train))
    add_zoo_parser(commands, _positive_int).set_defaults(handler=_guarded(run_zoo))

    reproduce = commands.add_parser(
        "reproduce",
        help="reproduce a table or figure of the seed papers, with a verdict",
        description="Run one of the seeds' experiments and write its table next to the "
        "paper's numbers, with 95 %% confidence intervals and a one-line verdict (holds / "
        "does not hold / partly). quick: minutes on 2 CPU cores with the zoo's small "
        "models; full: the paper's protocol (GPU). --list shows the experiments.",
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
        help="quick (default): minutes on CPU; full: the paper's protocol",
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
        help="parent folder of the report (default ./krylovadv-reproduce)",
    )
    reproduce.add_argument("--no-progress", action="store_true", help="hide progress bars")
    reproduce.set_defaults(handler=_guarded(_reproduce))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``krylovadv`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    args = build_parser().parse_args(argv)
    checks = (
        (("grid", 2), ("batch", 2), ("samples", 1), ("steps", 1)) if args.command == "demo" else ()
    )  # the other commands check in argparse
    for name, least in checks:
        if getattr(args, name, least) < least:
            print(f"krylovadv: error: --{name} must be at least {least}", file=sys.stderr)
            return 2
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
