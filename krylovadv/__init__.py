"""krylovadv: careful Krylov solvers under second-order adversarial machine learning.

The core (this package, without :mod:`krylovadv.torch`) is backend-agnostic: the
same code runs on numpy arrays and torch tensors through the array API, and never
imports torch.
"""

from .arnoldi import ArnoldiFactorization, arnoldi
from .cg import CGResult, cg
from .finite_difference import FiniteDifferenceHVP
from .givens import GivensQR, givens_rotation
from .gmres import GMRESResult, gmres
from .lanczos import EigshResult, eigsh
from .minres import MINRESResult, minres
from .operators import (
    DenseOperator,
    FunctionOperator,
    IdentityOperator,
    LinearOperator,
    ScipyOperator,
    ShiftedOperator,
    aslinearoperator,
    to_scipy_operator,
)
from .power import PowerIterationResult, power_iteration
from .status import SolverStatus

__version__ = "0.1.0"

__all__ = [
    "ArnoldiFactorization",
    "CGResult",
    "DenseOperator",
    "EigshResult",
    "FiniteDifferenceHVP",
    "FunctionOperator",
    "GMRESResult",
    "GivensQR",
    "IdentityOperator",
    "LinearOperator",
    "MINRESResult",
    "PowerIterationResult",
    "ScipyOperator",
    "ShiftedOperator",
    "SolverStatus",
    "__version__",
    "arnoldi",
    "aslinearoperator",
    "cg",
    "eigsh",
    "givens_rotation",
    "gmres",
    "minres",
    "power_iteration",
    "to_scipy_operator",
]
