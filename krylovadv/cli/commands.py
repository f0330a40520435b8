"""Handlers of the ``krylovadv`` commands: check the options, call the library, print.

Every handler validates its output locations before any computation, and
:func:`guarded` turns a wrong value into exit 2, a failed run into exit 1 and an
interrupt (Ctrl-C or SIGTERM) into one line saying where the progress is and
the exact command that resumes it (exit 130), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["attack", "demo", "evaluate", "guarded", "reproduce", "train", "zoo"]

#: Exit status of an interrupted command (128 + SIGINT, the shell's convention).
INTERRUPTED = 130


def error(command: str, message: str, status: int) -> int:
    """Print ``krylovadv COMMAND: error: MESSAGE`` on stderr and return ``status``."""
    print(f"krylovadv {command}: error: {message}", file=sys.stderr)
    return status


def _format_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    body = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _progress(args: argparse.Namespace) -> bool | None:
    """``--no-progress`` forces the bars off; otherwise the one rule (auto: a terminal)."""
    return False if args.no_progress else None


def resume_command(args: argparse.Namespace, *extra: str) -> str:
    """Return the command line that was run, with ``extra`` appended unless already there."""
    argv = [a for a in (getattr(args, "argv", None) or sys.argv[1:]) if a != "--overwrite"]
    if extra and extra[0] not in argv:
        argv += list(extra)
    return shlex.join(["krylovadv", *argv])


def _interrupted(args: argparse.Namespace, stop: KeyboardInterrupt) -> int:
    saved = getattr(stop, "saved", None)
    detail = getattr(stop, "detail", "")
    where = f" ({detail})" if detail else ""
    if args.command == "evaluate" and saved is not None:
        line = (
            f"interrupted{where}; progress saved to {saved}; resume with: "
            f"{resume_command(args, '--resume', saved)}"
        )
    elif args.command == "train" and saved is not None:
        line = (
            f"interrupted{where}; last checkpoint in {saved}; resume with: "
            f"{resume_command(args, '--resume')}"
        )
    else:
        line = f"interrupted{where}; nothing to resume from; rerun: {resume_command(args)}"
    print(f"krylovadv {args.command}: {line}", file=sys.stderr)
    return INTERRUPTED


def guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a torch command: exit 2 for a wrong value, 1 for a failed run, 130 on interrupt."""

    def run(args: argparse.Namespace) -> int:
        try:
            from ..torch.cli_support import UsageError
            from ..torch.interrupts import terminate_as_interrupt
        except ImportError as missing:  # the core installs without torch
            return error(
                args.command, f"this command needs torch ({missing}); install krylovadv[torch]", 1
            )
        try:
            with terminate_as_interrupt():
                return handler(args)
        except KeyboardInterrupt as stop:
            return _interrupted(args, stop)
        except UsageError as wrong:
            return error(args.command, str(wrong), 2)
        except (OSError, ValueError, RuntimeError) as failed:
            return error(args.command, f"{type(failed).__name__}: {failed}", 1)

    run.__name__ = getattr(handler, "__name__", "run")
    return run


# --- demo --------------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    """``krylovadv demo``: solver checks, then the attack demo (unless --solver-only)."""
    from ..demo import run_solver_demo

    if not args.solver_only:
        try:
            from ..torch.outputs import check_output_dir
        except ImportError as missing:  # the core installs without torch
            return error(
                "demo",
                f"the attack demo needs torch ({missing}); install krylovadv[torch] or pass "
                "--solver-only",
                1,
            )
        try:
            check_output_dir(args.output, "--output")
        except ValueError as wrong:
            return error("demo", str(wrong), 2)
    print("== Solvers: krylovadv.gmres against scipy, batched input-Hessian-like systems ==")
    rows = run_solver_demo(grid=args.grid, batch=args.batch, seed=args.seed)
    columns = ["experiment", "solver", "time_s", "matvecs", "relative_residual", "note"]
    print(_format_table(rows, columns))
    sys.stdout.flush()
    if args.solver_only:
        return 0
    from ..torch.demo import run_attack_demo

    print("\n== Attacks on the embedded MNIST test split (zoo models) ==")
    try:
        result = run_attack_demo(
            samples=args.samples,
            steps=args.steps,
            seed=args.seed,
            device=args.device,
            output=args.output,
            progress=_progress(args),
            solver_rows=rows,
        )
    except KeyboardInterrupt as stop:
        return _interrupted(args, stop)
    print(result.to_markdown(solvers=False))
    if result.folder is not None:
        print(f"\nReport written to {result.folder}/ (report.md, report.json, *.png)")
    return 0


# --- attack ------------------------------------------------------------------------------


def attack(args: argparse.Namespace) -> int:
    """``krylovadv attack``: one attack on a seeded subset; print and optionally save."""
    from ..torch import cli_support as cs

    name = args.attack.lower()
    if name not in cs.ATTACKS:
        raise cs.UsageError(
            "--attack", f"unknown attack {args.attack!r}; valid names: {', '.join(cs.ATTACKS)}."
        )
    if args.output is not None:
        if Path(args.output).suffix not in (".npz", ".safetensors"):
            raise cs.UsageError(
                "--output",
                f"{args.output}: use a .npz or .safetensors file (pickled .pt files are not "
                "written).",
            )
        cs.check_output(args.output, "--output", folder=False)
    cs.check_device(args.device)
    data = cs.load_data(args.data, split=args.split, samples=args.samples, seed=args.seed)
    eps = cs.checked_eps(args.eps, data=args.data, norm=args.norm, images=data, option="--eps")
    model, origin, digest = cs.load_model(args.model, device=args.device)
    attacker = cs.build_attack(
        name, model, norm=args.norm, eps=eps, steps=args.steps, seed=args.seed
    )
    outcome = cs.run_attack(
        attacker,
        model,
        data,
        device=args.device,
        batch_size=args.batch_size,
        progress=_progress(args),
    )
    steps = 1 if name == "fgsm" else args.steps
    weights = f" (weights sha256 {digest})" if digest else ""
    print(f"model: {origin}{weights}; data: {data.name} ({len(data)} samples, seed {args.seed})")
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
            "model_sha256": digest,
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


# --- evaluate ----------------------------------------------------------------------------


def _progress_file(args: argparse.Namespace) -> tuple[Path, bool]:
    """Where ``evaluate`` keeps its progress, and whether it is the automatic file."""
    if args.resume is not None:
        return Path(args.resume), False
    if args.output is not None:
        return Path(args.output) / "progress.json", True
    return Path("krylovadv-evaluate.progress.json"), True


def evaluate(args: argparse.Namespace) -> int:
    """``krylovadv evaluate``: clean and robust accuracy under a list of attacks."""
    from ..torch import cli_support as cs
    from ..torch.evaluate import evaluate as run_evaluation
    from ..torch.fingerprint import FingerprintMismatch

    if args.output is not None:
        cs.check_output(args.output, "--output", folder=True)
    progress_file, automatic = _progress_file(args)
    cs.check_output(progress_file, "--resume", folder=False)  # the automatic file too
    cs.check_device(args.device)
    data, indices = cs.load_data_subset(
        args.data, split=args.split, samples=args.samples, seed=args.seed
    )
    eps = {
        norm: cs.checked_eps(value, data=args.data, norm=norm, images=data, option=option)
        for norm, value, option in (
            ("linf", args.eps_linf, "--eps-linf"),
            ("l2", args.eps_l2, "--eps-l2"),
        )
    }
    model, origin, digest = cs.load_model(args.model, device=args.device)
    attacks = cs.parse_attack_list(args.attacks, model, eps=eps, steps=args.steps, seed=args.seed)
    meta = {
        "model": origin,
        "model_file_sha256": digest,
        "data": args.data,
        "split": args.split,
        "samples": len(data),
        "seed": args.seed,
        "sample_indices": indices.tolist(),
        "steps": args.steps,
        "eps": eps,
    }
    if automatic:
        progress_file.unlink(missing_ok=True)  # documented: the automatic file starts afresh
    try:
        report = run_evaluation(
            model,
            data,
            attacks,
            batch_size=args.batch_size,
            device=args.device,
            cascade=args.cascade,
            resume=progress_file,
            progress=_progress(args),
            meta=meta,
        )
    except FingerprintMismatch as mismatch:
        raise cs.UsageError("--resume", str(mismatch)) from None
    except ValueError as wrong:
        if "resume file" in str(wrong):
            raise cs.UsageError("--resume", str(wrong)) from None
        raise
    print(report.to_markdown())
    if args.output is not None:
        folder = cs.write_report(report, args.output)
        print(f"\nReport written to {folder}/ (report.md, report.json)")
    if automatic:
        progress_file.unlink(missing_ok=True)
    return 0


# --- train -------------------------------------------------------------------------------

#: TrainConfig field → the option that sets it (to name options, not fields, in messages).
TRAIN_OPTIONS = {
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


def _config_error_as_option(
    text: str, origin: dict[str, str], args: argparse.Namespace
) -> tuple[str, str]:
    """Name the option that set the field, not the TrainConfig field, in a config error."""
    named = re.search(r"TrainConfig\.(\w+)", text)
    if named is None:  # unknown field names: they came from --set or --config
        return ("--set" if args.set else "--config"), text
    field = named.group(1)
    option = origin.get(field) or TRAIN_OPTIONS.get(field, "--set")
    for name, flag in TRAIN_OPTIONS.items():
        text = text.replace(f"TrainConfig.{name}", flag)
    return option, text


def _build_train_config(args: argparse.Namespace) -> object:
    """Check the outputs and the folder, and build the TrainConfig (exit 2 on a wrong value)."""
    from .._cli_training import train_values
    from ..torch.cli_support import UsageError, check_device, check_output
    from ..torch.fingerprint import FingerprintMismatch
    from ..torch.run_folder import RunFolderError, prepare_run_folder

    if args.device is not None:
        check_device(args.device)
    if args.output is not None:
        if Path(args.output).suffix != ".safetensors":
            raise UsageError(
                "--output", f"{args.output}: the weights file must end in .safetensors."
            )
        check_output(args.output, "--output", folder=False)
    values, origin = train_values(args, TRAIN_OPTIONS)
    check_output(values["checkpoint_dir"], origin.get("checkpoint_dir", "--checkpoint-dir"),
                 folder=True)  # fmt: skip
    from ..torch.training import TrainConfig

    try:
        config = TrainConfig.from_dict(values)
    except ValueError as wrong:
        raise UsageError(*_config_error_as_option(str(wrong), origin, args)) from None
    try:
        return prepare_run_folder(config, resume=args.resume, overwrite=args.overwrite)
    except RunFolderError as taken:
        raise UsageError("--checkpoint-dir", str(taken)) from None
    except FingerprintMismatch as mismatch:
        raise UsageError("--resume", str(mismatch)) from None


def _print_epoch(config: object, record: dict) -> None:
    def show(value: object) -> str:
        return "-" if value is None else f"{value:.4f}"

    print(
        f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, "
        f"train acc {record['train_acc']:.4f}, clean acc {show(record['clean_acc'])}, "
        f"robust acc {show(record['robust_acc'])} (PGD-{config.eval_steps} on "
        f"{record['eval_count']} test digits), {record['time_s']:.1f} s",
        flush=True,
    )


def _summary_json(result: object, output: str | None) -> str:
    return json.dumps(
        {
            "global_step": result.global_step,
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            "resumed_from": result.resumed_from,
            "last_epoch": result.history[-1] if result.history else None,
            "output": output,
        },
        sort_keys=True,
    )


def train(args: argparse.Namespace) -> int:
    """``krylovadv train``: train, checkpoint every epoch, optionally write the weights."""
    from ..torch.checkpoint import latest_checkpoint, write_sidecar
    from ..torch.interrupts import RunInterrupted
    from ..torch.pretrained import save_weights_file
    from ..torch.progress import progress_enabled
    from ..torch.training import Trainer

    config = _build_train_config(args)
    start = latest_checkpoint(config.checkpoint_dir) if args.resume else None
    if start is not None and not args.json:
        print(f"resumed from {start}")
    trainer = Trainer(config, progress=progress_enabled(_progress(args)))
    if not args.json:
        print(
            f"{config.method} training of {config.model}: {config.epochs} epoch(s), "
            f"{config.norm} eps = {config.eps:g}, seed {config.seed}"
        )
    show = None if args.json else (lambda record: _print_epoch(config, record))
    try:
        # The folder was checked (and cleared for --overwrite) by _build_train_config.
        result = trainer.fit(resume=args.resume, overwrite=False, on_epoch=show)
        if not trainer.dist.is_main:  # under torchrun only rank 0 reports and writes
            return 0
    except KeyboardInterrupt:
        saved = str(config.checkpoint_dir)
        raise RunInterrupted(saved, "work since the last checkpoint is dropped") from None
    finally:
        trainer.close()
    digest = sidecar = None
    if args.output is not None:
        digest = save_weights_file(args.output, result.model, config=config)
        sidecar = write_sidecar(args.output, digest, config=config.to_dict())
    if args.json:
        print(_summary_json(result, args.output))
        return 0
    if trainer.schedule_note is not None:
        print(trainer.schedule_note)
    print(f"checkpoint: {result.checkpoint}")
    if args.output is not None:
        print(
            f"weights written to {args.output} (sha256 {digest}, recorded in {sidecar}; "
            f"load with --model {config.model}:{args.output})"
        )
    return 0


def zoo(args: argparse.Namespace) -> int:
    """``krylovadv zoo``: build, list or verify the pre-trained models."""
    from .._cli_training import run_zoo

    return run_zoo(args)


# --- reproduce ---------------------------------------------------------------------------


def reproduce(args: argparse.Namespace) -> int:
    """``krylovadv reproduce``: one experiment of the papers, with its verdict."""
    from ..torch.cli_support import check_output
    from ..torch.reproduce import EXPERIMENTS, available, run_experiment

    if args.list or args.experiment is None:
        ready = set(available())
        for name, (_, title) in EXPERIMENTS.items():
            state = "" if name in ready else "  [not implemented yet]"
            print(f"{name:16s} {title}{state}")
        return 0 if args.list else error("reproduce", "name an EXPERIMENT (or --list)", 2)
    if args.experiment not in EXPERIMENTS:
        return error(
            "reproduce",
            f"unknown experiment {args.experiment!r}; choose one of {', '.join(EXPERIMENTS)}",
            2,
        )
    check_output(args.output, "--output", folder=True)
    try:
        result = run_experiment(
            args.experiment,
            scale=args.scale,
            seed=args.seed,
            device=args.device,
            output=args.output,
            progress=_progress(args),
        )
    except NotImplementedError as missing:
        return error("reproduce", str(missing), 1)
    print(result.to_markdown())
    print(f"Report written to {args.output}/{args.experiment}/")
    return 0
