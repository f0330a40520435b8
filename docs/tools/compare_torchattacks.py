"""APGD-CE, APGD-DLR, APGD-T and Square (ℓ∞ and ℓ2): ours against torchattacks on zoo models.

Usage::

    OMP_NUM_THREADS=1 python docs/tools/compare_torchattacks.py [MODEL] [DIGITS]
        [--only LABEL ...] [--l2-model NAME] [--l2-eps EPS] [--queries N]

Same model, digits (the first DIGITS of the tuning part, default 200), budgets and
seed 0 for both libraries.  The ℓ∞ attacks run on MODEL (default: the zoo's
``pgd-linf``) at ε = 0.3; Square ℓ2 runs on ``--l2-model`` (default: the ℓ2-trained
``pgd-l2``) at ``--l2-eps`` (default 2.0).  Prints the digits still correct under
each attack (with the 95 % Newcombe interval of ours - theirs) and the wall time.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torchattacks

from krylovadv.data import load_mnist10k
from krylovadv.torch.attacks import APGD, APGDT, Square
from krylovadv.torch.intervals import difference_interval
from krylovadv.torch.pretrained import load_pretrained

LABELS = ("apgd-ce", "apgd-dlr", "apgd-t", "square-linf", "square-l2")


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (the positional MODEL and DIGITS of earlier versions kept)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="pgd-linf", help="zoo model of the ℓ∞ rows")
    parser.add_argument("digits", nargs="?", type=int, default=200, help="tuning digits")
    parser.add_argument("--only", nargs="+", choices=LABELS, default=list(LABELS))
    parser.add_argument("--l2-model", default="pgd-l2", help="zoo model of the Square ℓ2 row")
    parser.add_argument("--l2-eps", type=float, default=2.0, help="ℓ2 radius of Square ℓ2")
    parser.add_argument("--queries", type=int, default=300, help="Square's queries (both norms)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the chosen comparisons and print one line each."""
    args = parse(argv)
    torch.set_num_threads(1)
    count, q = args.digits, args.queries
    data = load_mnist10k("tuning").subset(count)
    x, y = torch.as_tensor(data.images), torch.as_tensor(data.labels)
    ta = torchattacks
    models = {name: load_pretrained(name) for name in dict.fromkeys((args.model, args.l2_model))}
    linf, l2, e2 = models[args.model], models[args.l2_model], args.l2_eps

    def pairs(label: str) -> tuple[str, torch.nn.Module, object, object]:
        if label == "apgd-ce":
            return (
                "APGD-CE 20",
                linf,
                APGD(linf, eps=0.3, steps=20, seed=0),
                ta.APGD(linf, eps=0.3, steps=20),
            )
        if label == "apgd-dlr":
            return (
                "APGD-DLR 20",
                linf,
                APGD(linf, eps=0.3, steps=20, loss="dlr", seed=0),
                ta.APGD(linf, eps=0.3, steps=20, loss="dlr", seed=0),
            )
        if label == "apgd-t":
            return (
                "APGD-T 20x3",
                linf,
                APGDT(linf, eps=0.3, steps=20, n_target_classes=3, seed=0),
                ta.APGDT(linf, eps=0.3, steps=20, n_classes=4, seed=0),
            )
        if label == "square-linf":
            return (
                f"Square ℓ∞ 0.3 {q}",
                linf,
                Square(linf, eps=0.3, queries=q, seed=0),
                ta.Square(linf, eps=0.3, n_queries=q, seed=0),
            )
        return (
            f"Square ℓ2 {e2:g} {q} ({args.l2_model})",
            l2,
            Square(l2, norm="l2", eps=e2, queries=q, seed=0),
            ta.Square(l2, norm="L2", eps=e2, n_queries=q, seed=0),
        )

    def correct(model: torch.nn.Module, x_adv: torch.Tensor) -> int:
        with torch.no_grad():
            return int((model(x_adv).argmax(1) == y).sum())

    for name, model in models.items():
        print(f"{name}: clean {correct(model, x)}/{count}")
    for key in args.only:
        label, model, ours, theirs = pairs(key)
        t = time.perf_counter()
        a = correct(model, ours(x, y))
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        b = correct(model, theirs(x, y))
        t_theirs = time.perf_counter() - t
        diff, low, high = difference_interval(a, count, b, count)
        print(
            f"{label}: ours {a}/{count} ({t_ours:.1f} s), torchattacks {b}/{count} "
            f"({t_theirs:.1f} s); ours - theirs {100 * diff:+.1f} [{100 * low:+.1f}, "
            f"{100 * high:+.1f}] points"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
