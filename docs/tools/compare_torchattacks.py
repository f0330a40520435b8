"""APGD-CE, APGD-DLR, APGD-T and Square: ours against torchattacks on one zoo model.

Usage::

    OMP_NUM_THREADS=1 python docs/tools/compare_torchattacks.py [MODEL] [DIGITS]

Same model (default: the zoo's ``pgd-linf``), digits (the first DIGITS of the tuning
part, default 200), ℓ∞ ε = 0.3, budgets and seed 0 for both libraries; prints the
digits still correct under each attack and the wall time.
"""

from __future__ import annotations

import sys
import time

import torch
import torchattacks

from krylovadv.data import load_mnist10k
from krylovadv.torch.attacks import APGD, APGDT, Square
from krylovadv.torch.pretrained import load_pretrained


def main(argv: list[str]) -> int:
    """Run the four comparisons and print one line each."""
    torch.set_num_threads(1)
    name = argv[0] if argv else "pgd-linf"
    count = int(argv[1]) if len(argv) > 1 else 200
    model = load_pretrained(name)
    data = load_mnist10k("tuning").subset(count)
    x, y = torch.as_tensor(data.images), torch.as_tensor(data.labels)

    def correct(x_adv: torch.Tensor) -> int:
        with torch.no_grad():
            return int((model(x_adv).argmax(1) == y).sum())

    print(f"{name}: clean {correct(x)}/{count}")
    ta = torchattacks
    pairs = [
        ("APGD-CE 20", APGD(model, eps=0.3, steps=20, seed=0), ta.APGD(model, eps=0.3, steps=20)),
        (
            "APGD-DLR 20",
            APGD(model, eps=0.3, steps=20, loss="dlr", seed=0),
            ta.APGD(model, eps=0.3, steps=20, loss="dlr", seed=0),
        ),
        (
            "APGD-T 20x3",
            APGDT(model, eps=0.3, steps=20, n_target_classes=3, seed=0),
            ta.APGDT(model, eps=0.3, steps=20, n_classes=4, seed=0),
        ),
        (
            "Square 300",
            Square(model, eps=0.3, queries=300, seed=0),
            ta.Square(model, eps=0.3, n_queries=300, seed=0),
        ),
    ]
    for label, ours, theirs in pairs:
        t = time.perf_counter()
        a = correct(ours(x, y))
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        b = correct(theirs(x, y))
        t_theirs = time.perf_counter() - t
        print(f"{label}: ours {a}/{count} ({t_ours:.1f} s), ", end="")
        print(f"torchattacks {b}/{count} ({t_theirs:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
