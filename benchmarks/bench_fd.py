"""Cost of finite-difference Hessian-vector products, in gradient evaluations.

A forward-difference product needs one new gradient (``grad(x)`` is cached at
construction), a central one two.  Whether a product really costs 1 or 2
gradients depends on how expensive the gradient is compared with the fixed
Python/array overhead of the product, so this is measured, on a cheap gradient
(``n = 100``: a 100 x 100 matrix-vector product) and an expensive one
(``n = 2000``), both timed in the same process, interleaved.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np

import krylovadv

from .problems import Quadratic
from .timing import Comparison, interleaved_min

SIZES = (100, 2000)
SCHEMES = ("forward", "central")
REPEATS = 7


@functools.cache
def get_quadratic(n: int) -> Quadratic:
    """The (cached) quadratic of size ``n``."""
    return Quadratic(n)


def make_hvp(q: Quadratic, scheme: str) -> krylovadv.FiniteDifferenceHVP:
    """A finite-difference HVP operator at ``q.x`` (forward: ``grad(x)`` evaluated here)."""
    return krylovadv.FiniteDifferenceHVP(q.grad, q.x, scheme=scheme)


def measure_product_times(n: int, repeats: int = REPEATS) -> dict[str, float]:
    """Seconds per gradient, per forward product and per central product, interleaved."""
    q = get_quadratic(n)
    fwd, cen = make_hvp(q, "forward"), make_hvp(q, "central")
    return interleaved_min(
        {
            "gradient": lambda: q.grad(q.x),
            "forward": lambda: fwd @ q.v,
            "central": lambda: cen @ q.v,
        },
        repeats=repeats,
    )


def grad_evals_per_product(n: int, scheme: str, products: int = 10) -> float:
    """Gradient evaluations per product, from the operator's own counter."""
    q = get_quadratic(n)
    hvp = make_hvp(q, scheme)
    before = hvp.num_grad_evals
    for _ in range(products):
        hvp @ q.v
    return (hvp.num_grad_evals - before) / products


def relative_error(n: int, scheme: str) -> float:
    """``||Hv_fd - Q v|| / ||Q v||`` against the exact Hessian of the quadratic."""
    q = get_quadratic(n)
    exact = q.hvp(q.v)
    return float(np.linalg.norm(make_hvp(q, scheme) @ q.v - exact) / np.linalg.norm(exact))


def measure_fd(n: int) -> list[Comparison]:
    """One row per scheme: product time against one gradient evaluation."""
    times = measure_product_times(n)
    return [
        Comparison(
            name=f"FD-HVP {scheme} product vs 1 gradient, quadratic n={n}",
            reference="1 gradient evaluation",
            time_krylovadv=times[scheme],
            time_reference=times["gradient"],
            work_krylovadv=grad_evals_per_product(n, scheme),
            work_reference=1,
            error_krylovadv=relative_error(n, scheme),
            error_reference=None,
            error_name="relative error vs exact Hv",
        )
        for scheme in SCHEMES
    ]


class FiniteDifferenceHVPCost:
    """Products per second and cost of one product in gradient evaluations."""

    params: ClassVar[list] = list(SIZES)
    param_names: ClassVar[list[str]] = ["n"]
    timeout = 120

    def setup(self, n):
        self.q = get_quadratic(n)
        self.forward = make_hvp(self.q, "forward")
        self.central = make_hvp(self.q, "central")

    def time_gradient(self, n):
        self.q.grad(self.q.x)

    def time_fd_forward(self, n):
        self.forward @ self.q.v

    def time_fd_central(self, n):
        self.central @ self.q.v

    def track_fd_forward_cost_in_gradients(self, n):
        times = measure_product_times(n)
        return times["forward"] / times["gradient"]

    track_fd_forward_cost_in_gradients.unit = "gradients"

    def track_fd_central_cost_in_gradients(self, n):
        times = measure_product_times(n)
        return times["central"] / times["gradient"]

    track_fd_central_cost_in_gradients.unit = "gradients"

    def track_fd_forward_products_per_second(self, n):
        return 1.0 / measure_product_times(n)["forward"]

    track_fd_forward_products_per_second.unit = "products/s"

    def track_fd_central_products_per_second(self, n):
        return 1.0 / measure_product_times(n)["central"]

    track_fd_central_products_per_second.unit = "products/s"

    def track_fd_forward_grad_evals_per_product(self, n):
        return grad_evals_per_product(n, "forward")

    track_fd_forward_grad_evals_per_product.unit = "gradients"

    def track_fd_central_grad_evals_per_product(self, n):
        return grad_evals_per_product(n, "central")

    track_fd_central_grad_evals_per_product.unit = "gradients"

    def track_fd_forward_relative_error(self, n):
        return relative_error(n, "forward")

    track_fd_forward_relative_error.unit = "relative error"

    def track_fd_central_relative_error(self, n):
        return relative_error(n, "central")

    track_fd_central_relative_error.unit = "relative error"
