"""Command-line interface: ``krylovadv <command>`` (a thin layer over the library)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    print(_format_table(rows, ["experiment", "solver", "time_s", "matvecs",
                               "relative_residual", "note"]))
    if args.solver_only:
        return 0
    try:
        from .torch.demo import run_attack_demo
    except ImportError as error:  # the core installs without torch
        print(f"krylovadv: error: the attack demo needs torch ({error}); install "
              "krylovadv[torch] or pass --solver-only", file=sys.stderr)
        return 1
    print("\n== Attacks on the embedded MNIST test split (zoo models) ==")
    result = run_attack_demo(samples=args.samples, steps=args.steps, seed=args.seed,
                             device=args.device, output=args.output,
                             progress=not args.no_progress)
    print(result.to_markdown())
    if result.folder is not None:
        print(f"\nReport written to {result.folder}/ (report.md, report.json, *.png)")
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
        "demo", help="the main job: solver checks, then attacks on embedded MNIST digits",
        description="Run GMRES(30) against scipy on a convection-diffusion problem and a "
                    "batch of rank-9 PSD systems shaped like MNIST input Hessians; then "
                    "attack the zoo's natural and PGD-trained MNIST models with FGSM, "
                    "PGD-linf/l2, S-O-linf/l2 and SOAE, print the tables and write a "
                    "report folder (Markdown, JSON, PNG).",
    )
    demo.add_argument("--grid", type=int, default=100,
                      help="grid points per side of the convection-diffusion problem "
                           "(default 100: 10,000 unknowns)")
    demo.add_argument("--batch", type=int, default=64,
                      help="number of systems in the batched experiment (default 64)")
    demo.add_argument("--seed", type=int, default=0,
                      help="seed of the random systems, the digit subset and the attacks")
    demo.add_argument("--samples", type=int, default=200,
                      help="MNIST test digits to attack (default 200)")
    demo.add_argument("--steps", type=int, default=20,
                      help="iterations of the iterative attacks (default 20)")
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    demo.add_argument("--output", default="krylovadv-report",
                      help="report folder (default ./krylovadv-report)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.add_argument("--solver-only", action="store_true",
                      help="run only the solver part (no torch needed)")
    demo.set_defaults(handler=_demo)
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
    for name, least in (("grid", 2), ("batch", 2), ("samples", 1), ("steps", 1)):
        if getattr(args, name, least) < least:
            print(f"krylovadv: error: --{name} must be at least {least}", file=sys.stderr)
            return 2
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
