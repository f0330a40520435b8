"""Train Qian et al.'s ResNet-18 MNIST models on a GPU and run ``soae-table1`` on them.

Qian et al. (*Hessian-Free Second-Order Adversarial Examples for Adversarial Learning*)
attack ResNet-18 (and WideResNet) MNIST models trained without defence (STD), with PGD
adversarial training, with TRADES and with their SOAT.  The zoo ships Madry et al.'s CNN
instead (CPU budgets); this tool trains the paper's architecture, a pre-activation
ResNet-18 reading one channel (:class:`krylovadv.torch.models.PreActResNet18` with
``in_channels=1``), on the 8,000 embedded training digits, and runs the reproduction's
own code on it.  The weights (45 MB each) are not shipped.

Usage (each command is one process; the GPU may run several at once)::

    python docs/tools/gpu_resnet18.py train NAME --out DIR [--epochs E] [--device cuda]
    python docs/tools/gpu_resnet18.py part EXPERIMENT MODEL PART --output DIR
        [--scale quick|full] [--resnet] [--device cuda]
    python docs/tools/gpu_resnet18.py report EXPERIMENT --output DIR [--scale ...] [--resnet]

``train`` fits one model (:data:`CONFIGS`; the last epoch is kept, nothing is selected on
test digits), saves ``DIR/resnet18-NAME.safetensors``, measures clean and PGD-40 accuracy
(α = 2.5 ε / 40, one random start, seed 0) at ℓ∞ ε = 0.3 on the first 1,000 reporting
digits, writes ``DIR/resnet18-NAME.json`` and adds the model to the package registry of
this checkout as ``resnet18-NAME`` (so that the reproductions can load it).  ``part``
computes one cached part of one model of a reproduction (:func:`compute_parts`);
``report`` assembles the report from the stored parts.  ``--resnet`` swaps the
experiment's model list for the ResNet-18 models (:data:`RESNET_MODELS`), keeping the
scale's sizes.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from krylovadv.data import load_mnist10k
from krylovadv.torch.checkpoint import atomic_write_bytes, sha256_bytes
from krylovadv.torch.pretrained import REGISTRY_FILE, load_registry, save_weights_file
from krylovadv.torch.training import TrainConfig, Trainer, evaluate_accuracy

_COMMON: dict[str, Any] = {
    "model": "resnet18",
    "model_kwargs": {"in_channels": 1},
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "lr_schedule": "cosine",
    "batch_size": 128,
    "seed": 0,
    "eval_subset": 200,
    "eval_steps": 10,
}

#: Training configuration of each model: PGD-10 (α = 2.5 ε / 10) for PGD-AT and TRADES
#: (β = 6, Zhang et al.'s MNIST value), SOAT with 3 SOAE steps and m ≤ 9, ℓ∞ ε = 0.3 with
#: a one-epoch ε warm-up; epochs sized to a few minutes of one H200 (the paper: 300).
CONFIGS: dict[str, dict[str, Any]] = {
    "natural": dict(_COMMON, method="natural", epochs=4),
    "pgd-linf": dict(
        _COMMON, method="pgd-at", norm="linf", eps=0.3, steps=10, epochs=8, eps_warmup_epochs=1
    ),
    "trades": dict(
        _COMMON,
        method="trades",
        norm="linf",
        eps=0.3,
        steps=10,
        trades_beta=6.0,
        epochs=8,
        eps_warmup_epochs=1,
    ),
    "soat": dict(
        _COMMON,
        method="soat",
        norm="linf",
        eps=0.3,
        steps=3,
        soat_max_krylov_dim=9,
        epochs=2,
        eps_warmup_epochs=1,
    ),
}
#: The rows of Qian et al.'s Table I that each ResNet-18 model fills.
RESNET_MODELS = {
    "resnet18-natural": "STD",
    "resnet18-pgd-linf": "PGD",
    "resnet18-trades": "TRADES",
    "resnet18-soat": "SOAT",
}
EVAL_COUNT = 1000


def _register(name: str, weights: Path, summary: dict[str, Any]) -> None:
    """Add ``name`` to this checkout's registry (under a lock: several trainers finish)."""
    blob = weights.read_bytes()
    target = REGISTRY_FILE.parent / weights.name
    atomic_write_bytes(target, blob)
    with open(REGISTRY_FILE.parent / ".registry.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        registry = load_registry()
        registry["models"][name] = {
            "file": weights.name,
            "sha256": sha256_bytes(blob),
            "bytes": len(blob),
            "model": "resnet18",
            "model_kwargs": summary["config"]["model_kwargs"],
            "method": summary["config"]["method"],
            "command": "python docs/tools/gpu_resnet18.py train " + summary["name"],
            "quick": False,
            "note": "Qian et al.'s ResNet-18 MNIST model, trained on a GPU by "
            "docs/tools/gpu_resnet18.py; not shipped (weights too large).",
            "config": summary["config"],
            "metrics": summary["metrics"],
            "history": summary["history"],
            "train_time_s": summary["train_time_s"],
            "threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
        }
        text = json.dumps(registry, indent=1, sort_keys=True) + "\n"
        atomic_write_bytes(REGISTRY_FILE, text.encode("utf-8"))


def register_from_parts(output: Path, models: list[str]) -> list[str]:
    """Register models whose weights are elsewhere from the parts stored under ``output``.

    A report is assembled from stored parts only (no model is loaded), so on a
    machine without the weights (they are not shipped) it needs just the registry's
    sha256, which every stored part records in its identity.  Only names absent from
    the registry are added, each marked as having no weights file here.
    """
    added = []
    with open(REGISTRY_FILE.parent / ".registry.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        registry = load_registry()
        for name in models:
            stored = sorted((output / "models" / name).glob("*.json"))
            if name in registry["models"] or not stored:
                continue
            shas = {json.loads(f.read_text())["identity"]["sha256"] for f in stored}
            if len(shas) != 1:
                raise SystemExit(f"{name}: its stored parts come from different weights {shas}.")
            registry["models"][name] = {
                "file": None,
                "sha256": shas.pop(),
                "model": "resnet18",
                "model_kwargs": {"in_channels": 1},
                "note": "weights not on this machine: registered from its stored parts "
                "to assemble a report",
            }
            added.append(name)
        text = json.dumps(registry, indent=1, sort_keys=True) + "\n"
        atomic_write_bytes(REGISTRY_FILE, text.encode("utf-8"))
    return added


def train(
    name: str, out: Path, device: str, epochs: int | None, train_size: int | None = None
) -> dict[str, Any]:
    """Train, save, evaluate and register ``resnet18-NAME``; return its summary."""
    settings = dict(CONFIGS[name], device=device, train_size=train_size)
    if train_size is not None:  # a smoke test: a small per-epoch evaluation too
        settings["eval_subset"] = min(settings["eval_subset"], train_size)
    if epochs is not None:
        settings["epochs"] = epochs
    config = TrainConfig.from_dict(settings)
    wall = time.perf_counter()
    result = Trainer(config, progress=False).fit()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - wall
    model = result.model.eval()
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"resnet18-{name}.safetensors"
    save_weights_file(weights, model.cpu(), config=config)
    model.to(device)
    report = load_mnist10k("reporting").subset(EVAL_COUNT if train_size is None else 20)
    images = torch.as_tensor(report.images, device=device)
    labels = torch.as_tensor(report.labels, device=device)
    acc = evaluate_accuracy(model, images, labels, norm="linf", eps=0.3, steps=40, seed=0)
    summary = {
        "name": name,
        "sha256": sha256_bytes(weights.read_bytes()),
        "config": config.to_dict(),
        "metrics": {
            "split": "mnist10k-reporting",
            "count": len(report),
            "clean_acc": acc["clean_acc"],
            "robust_acc_linf": acc["robust_acc"],
            "attack": "PGD-40, alpha = 2.5 eps / 40, 1 random start, seed 0, linf 0.3",
        },
        "history": result.history,
        "train_time_s": round(wall, 1),
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
        "torch": torch.__version__,
    }
    (out / f"resnet18-{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    _register(f"resnet18-{name}", weights, summary)
    return summary


#: ``--tiny``: sizes that run the whole pipeline in a minute of CPU (a smoke test of this tool).
TINY = {
    "tuning": 8,
    "reporting": 16,
    "pgd_steps": 2,
    "soae_steps": [2],
    "steps": 2,
    "max_krylov_dim": 2,
    "tau_grid": [1e-2],
    "shift_grid": [0.0],
    "eta_grid": [1e-3],
    "sigma_grid": [0.3],
    "noise_grid": [2],
    "baseline_steps": 2,
    "targets": 1,
    "square_queries": 4,
    "masking_long_steps": 4,
}


def _experiment(name: str, resnet: bool, tiny: bool = False) -> Any:
    """Import the reproduction module; swap its quick and full model lists if ``resnet``."""
    module = importlib.import_module(f"krylovadv.torch.reproduce.{name.replace('-', '_')}")
    if resnet:
        if name != "soae-table1":
            raise SystemExit("--resnet applies to soae-table1 (Qian et al.'s models) only.")
        for size in (module.QUICK, module.FULL):
            size["models"] = dict(RESNET_MODELS)
            size["untuned"] = ["resnet18-natural"]
    if tiny:
        module.QUICK.update({k: v for k, v in TINY.items() if k in module.QUICK})
    return module


def _options(args: argparse.Namespace) -> Any:
    from krylovadv.torch.reproduce import ReproduceOptions

    return ReproduceOptions(
        scale=args.scale, seed=0, device=args.device, output=args.output, progress=False
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train")
    p_train.add_argument("name", choices=sorted(CONFIGS))
    p_train.add_argument("--out", required=True, type=Path)
    p_train.add_argument("--epochs", type=int, default=None)
    p_train.add_argument("--device", default="cuda")
    p_train.add_argument("--train-size", type=int, default=None, help="smoke test: fewer digits")
    for cmd in ("part", "report"):
        p = sub.add_parser(cmd)
        p.add_argument("experiment", choices=["so-table1", "soae-table1"])
        if cmd == "part":
            p.add_argument("model")
            p.add_argument("parts", nargs="+")
        p.add_argument("--output", required=True, type=Path, help="the report folder itself")
        p.add_argument("--scale", choices=["quick", "full"], default="quick")
        p.add_argument("--resnet", action="store_true")
        p.add_argument("--tiny", action="store_true", help="smoke-test sizes (quick scale)")
        if cmd == "report":
            p.add_argument(
                "--from-parts",
                action="store_true",
                help="register the ResNet-18 models from their stored parts (no weights here)",
            )
        p.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.command == "train":
        summary = train(args.name, args.out, args.device, args.epochs, args.train_size)
        print(json.dumps({k: summary[k] for k in ("name", "metrics", "train_time_s")}))
    elif args.command == "part":
        module = _experiment(args.experiment, args.resnet, args.tiny)
        module.compute_parts(_options(args), args.model, args.parts)
        print(f"{args.experiment} {args.model} {args.parts}: {time.perf_counter() - start:.0f} s")
    else:
        options = _options(args)
        module = _experiment(args.experiment, args.resnet, args.tiny)
        if args.from_parts:
            print(
                "registered from stored parts:",
                register_from_parts(args.output, list(RESNET_MODELS)),
            )
        result = module.run(options)
        if args.resnet:
            result.command = (
                f"python docs/tools/gpu_resnet18.py report {args.experiment} --resnet "
                f"--scale {args.scale} --device {args.device}"
            )
            result.notes.insert(
                0,
                "Run by docs/tools/gpu_resnet18.py: `train NAME` trained each ResNet-18 model "
                f"({', '.join(sorted(CONFIGS))}; configurations in the tool's CONFIGS), `part` "
                "computed each model's cached parts, `report` assembled them.  The weights "
                "(45 MB each) are not shipped; the registry sha256 identifies them.",
            )
        else:
            result.command = (
                f"krylovadv reproduce {args.experiment} --scale {args.scale} --device {args.device}"
            )
            result.notes.insert(
                0,
                "Each model's parts were computed in parallel processes by "
                "`python docs/tools/gpu_resnet18.py part`, then assembled by its `report`; "
                "one `krylovadv reproduce` run computes the same parts one after another.",
            )
        result.write(options.output)
        print(result.table)
        print(f"Verdict: {result.verdict}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
