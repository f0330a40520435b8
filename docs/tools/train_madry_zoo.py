"""Train the ``madry-cnn`` zoo models on the 8,000 embedded training digits (CPU, 1 thread).

Usage::

    OMP_NUM_THREADS=1 python docs/tools/train_madry_zoo.py NAME [NAME ...] --out DIR
    python docs/tools/train_madry_zoo.py --out DIR --register   # into the zoo

Each model is trained with :class:`krylovadv.torch.training.Trainer` (the configuration is
:data:`CONFIGS`; the last epoch is kept — no early stopping, nothing is selected on test
digits), saved as ``DIR/madry-cnn-NAME.safetensors`` and evaluated on the *reporting* part
of the test digits (the first 1,000 of :func:`krylovadv.data.load_mnist10k` of
``"reporting"``): clean accuracy and PGD-40 (α = 2.5 ε / 40, one random start, seed 0)
at ℓ∞ ε = 0.3 (ℓ2 ε = 2.0 for the ℓ2 model).  A JSON summary with the budget goes next to
the weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from krylovadv.data import load_mnist10k
from krylovadv.torch.pretrained import save_weights_file
from krylovadv.torch.training import TrainConfig, Trainer, evaluate_accuracy

_COMMON = {
    "model": "madry-cnn",
    "optimizer": "adam",
    "lr": 1e-3,
    "momentum": 0.0,
    "lr_schedule": "cosine",
    "batch_size": 50,
    "seed": 0,
    "eval_subset": 100,
    "eval_steps": 10,
}

#: Training configuration of each model.  The budgets are what 2 shared CPU cores allowed in
#: the task that trained them (about 20-25 % of one core per process under a load of ~8):
#: PGD-5 inner maximisation (α = 2.5 ε / 5) instead of Madry et al.'s PGD-40, a few epochs.
CONFIGS = {
    "natural": dict(_COMMON, method="natural", epochs=4),
    "pgd-linf": dict(
        _COMMON, method="pgd-at", norm="linf", eps=0.3, steps=7, epochs=10, eps_warmup_epochs=1
    ),
    "pgd-l2": dict(
        _COMMON, method="pgd-at", norm="l2", eps=2.0, steps=5, epochs=4, eps_warmup_epochs=1
    ),
    "trades": dict(
        _COMMON,
        method="trades",
        norm="linf",
        eps=0.3,
        steps=5,
        trades_beta=6.0,
        epochs=5,
        eps_warmup_epochs=1,
    ),
}
#: The norms in which each model is evaluated (PGD-40 at ℓ∞ 0.3 / ℓ2 2.0).
NORMS = {"natural": ["linf"], "pgd-linf": ["linf"], "pgd-l2": ["l2"], "trades": ["linf"]}
#: Reporting digits of the final evaluation (the first ones, class-balanced).
EVAL_COUNT = 1000


def register(out: Path, weights_dir: Path | None = None) -> list[str]:
    """Copy the trained weights into the zoo and add registry entries ``madry-NAME``.

    Each entry's configuration must equal the zoo's recipe
    (:data:`krylovadv.torch.zoo.ZOO`), so that ``krylovadv zoo build madry-NAME``
    retrains the same model; the metrics are those of :func:`main` (reporting digits).
    """
    from krylovadv import __version__
    from krylovadv.torch.checkpoint import atomic_write_bytes, sha256_bytes
    from krylovadv.torch.pretrained import REBUILD_COMMAND, WEIGHTS_DIR, load_registry
    from krylovadv.torch.zoo import ZOO

    directory = weights_dir or WEIGHTS_DIR
    registry_path = directory / "registry.json"
    registry = load_registry(registry_path)
    added = []
    for summary_path in sorted(out.glob("madry-cnn-*.json")):
        summary = json.loads(summary_path.read_text())
        name = f"madry-{summary['name']}"
        recipe = TrainConfig.from_dict(ZOO[name]["config"]).to_dict()
        if recipe != summary["config"]:
            raise SystemExit(f"{name}: trained configuration differs from the zoo recipe.")
        blob = (out / ZOO[name]["file"]).read_bytes()
        if sha256_bytes(blob) != summary["sha256"]:
            raise SystemExit(f"{name}: weights file does not match its summary.")
        atomic_write_bytes(directory / ZOO[name]["file"], blob)
        metrics = dict(summary["metrics"])
        norm = NORMS[summary["name"]][0]
        metrics.update(
            subset="the first 1,000 digits (class-balanced)",
            attack="PGD-40, alpha = 2.5 eps / 40, 1 random start, seed 0",
            robust_norm=norm,
            robust_acc=metrics[f"robust_acc_{norm}"],
            **{f"eps_{norm}": {"linf": 0.3, "l2": 2.0}[norm]},
        )
        registry["models"][name] = {
            "file": ZOO[name]["file"],
            "sha256": summary["sha256"],
            "bytes": len(blob),
            "model": "madry-cnn",
            "model_kwargs": {},
            "method": summary["config"]["method"],
            "command": f"{REBUILD_COMMAND} {name}",
            "quick": False,
            "note": "Madry et al.'s MNIST CNN trained on a shared 2-core CPU by "
            "docs/tools/train_madry_zoo.py (same configuration as the zoo recipe); "
            "metrics on the reporting part of the test digits.",
            "config": summary["config"],
            "metrics": metrics,
            "history": summary["history"],
            "train_time_s": summary["train_time_s"],
            "train_cpu_s": summary["train_cpu_s"],
            "threads": summary["threads"],
            "krylovadv_version": __version__,
            "torch_version": torch.__version__,
        }
        added.append(name)
    text = json.dumps(registry, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(registry_path, text.encode("utf-8"))
    return added


def main(argv: list[str] | None = None) -> int:
    """Train, save and evaluate the named models; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"models to train, of {sorted(CONFIGS)}")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--register", action="store_true", help="add the trained models in --out to the zoo"
    )
    args = parser.parse_args(argv)
    if args.register:
        print(register(args.out))
        return 0
    unknown = [n for n in args.names if n not in CONFIGS]
    if unknown or not args.names:
        parser.error(f"name models to train among {sorted(CONFIGS)}; got {args.names}.")
    torch.set_num_threads(1)
    report = load_mnist10k("reporting").subset(EVAL_COUNT)
    images, labels = torch.as_tensor(report.images), torch.as_tensor(report.labels)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        config = TrainConfig.from_dict(CONFIGS[name])
        wall, cpu = time.perf_counter(), time.process_time()
        result = Trainer(config, progress=False).fit()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        model = result.model.eval()
        digest = save_weights_file(args.out / f"madry-cnn-{name}.safetensors", model, config=config)
        metrics = {"split": "mnist10k-reporting", "count": len(report)}
        for norm in NORMS[name]:
            eps = {"linf": 0.3, "l2": 2.0}[norm]
            acc = evaluate_accuracy(model, images, labels, norm=norm, eps=eps, steps=40, seed=0)
            metrics["clean_acc"] = acc["clean_acc"]
            metrics[f"robust_acc_{norm}"] = acc["robust_acc"]
        summary = {
            "name": name,
            "sha256": digest,
            "config": config.to_dict(),
            "metrics": metrics,
            "history": result.history,
            "train_time_s": round(wall, 1),
            "train_cpu_s": round(cpu, 1),
            "threads": torch.get_num_threads(),
        }
        (args.out / f"madry-cnn-{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(json.dumps({k: summary[k] for k in ("name", "metrics", "train_cpu_s")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
