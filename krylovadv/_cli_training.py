"""The ``krylovadv train`` option merging and the ``krylovadv zoo`` command (torch-free).

Helpers of :mod:`krylovadv.cli`; importing this module must not import torch, so
that ``krylovadv --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["add_zoo_parser", "run_zoo", "train_values"]


def train_values(args: argparse.Namespace, options: Mapping[str, str]) -> tuple[dict, dict]:
    """``krylovadv train``'s TrainConfig fields and the option that set each one.

    Later sources override earlier ones: ``--config``'s JSON object, then the
    named options (``options``: field → flag), then ``--set FIELD=VALUE``.
    """
    from .torch.cli_support import UsageError

    values: dict = {}
    origin: dict = {}  # field -> the option that set it, for error messages
    if args.config is not None:
        try:
            loaded = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise UsageError("--config", f"{args.config}: {error}") from error
        if not isinstance(loaded, dict):
            raise UsageError("--config", f"{args.config} must hold a JSON object of fields.")
        values.update(loaded)
        origin.update(dict.fromkeys(loaded, "--config"))
    named = {field: getattr(args, field) for field in options}
    for field, value in named.items():
        if value is not None:
            values[field], origin[field] = value, options[field]
    for item in args.set:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UsageError("--set", f"needs FIELD=VALUE; got {item!r}.")
        try:
            values[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            values[name.strip()] = text  # a bare word: a string field such as method=trades
        origin[name.strip()] = "--set"
    for field in ("method", "checkpoint_dir"):
        if values.get(field) is None:
            flag = options[field]
            raise UsageError(flag, f"required (or give {field} in --config or --set).")
    values["checkpoint_dir"] = str(values["checkpoint_dir"])
    return values, origin


def run_zoo(args: argparse.Namespace) -> int:
    """Handle ``krylovadv zoo``: check the names, then :func:`krylovadv.torch.zoo.run_command`."""
    from .torch.cli_support import UsageError
    from .torch.zoo import ZOO, run_command

    unknown = [name for name in args.names if name not in ZOO]
    if args.names and args.action != "build":
        raise UsageError("NAMES", f"only `build` takes model names; got {args.names}.")
    if unknown:
        raise UsageError("NAMES", f"unknown zoo model(s) {unknown}; choose from {list(ZOO)}.")
    return run_command(
        args.action,
        names=args.names,
        quick=args.quick,
        weights_dir=args.dir,
        eval_count=args.eval_count,
        threads=args.threads,
        progress=not args.no_progress,
    )


def add_zoo_parser(
    commands: argparse._SubParsersAction, positive_int: Callable[[str], int]
) -> argparse.ArgumentParser:
    """Add ``krylovadv zoo`` to ``commands`` and return its parser (the caller sets the handler).

    Declared here, not in :mod:`krylovadv.torch.zoo`: building the parser must
    not import torch.
    """
    zoo = commands.add_parser(
        "zoo",
        help="build, list or verify the pre-trained model zoo",
        description="Build (train, evaluate, register), list or verify the small "
        "pre-trained MNIST models shipped in krylovadv/torch/weights. Exit status: 0 "
        "done, 1 verify found a missing or corrupt file, 2 a wrong option.",
    )
    zoo.add_argument("action", choices=("build", "list", "verify"), help="what to do")
    zoo.add_argument("names", nargs="*", help="models to build (default: all)")
    zoo.add_argument(
        "--quick", action="store_true", help="tiny budget (smoke test; recorded in the registry)"
    )
    zoo.add_argument("--dir", default=None, help="weights folder (default: the package's)")
    zoo.add_argument(
        "--eval-count",
        type=positive_int,
        default=None,
        help="test digits for the accuracies (default 2000)",
    )
    zoo.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch intra-op threads (default: torch's choice)",
    )
    zoo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return zoo
