"""Hypothesis strategies over the problem families of :mod:`krylovadv.testing.families`.

Every strategy draws only small integers and floats (a family name, a size, a
dtype, a seed, the log10 of a condition number) and builds the problem with
numpy: generation is fast, shrinking is cheap, and a failing example is
reproducible from what hypothesis prints.  Requires ``hypothesis``.

Examples
--------
>>> import numpy as np
>>> from hypothesis import given, settings
>>> from krylovadv.testing import linear_systems
>>> @settings(max_examples=5, database=None)
... @given(linear_systems(families=("ill_conditioned",), dtypes=(np.float32,)))
... def check(p):
...     assert p.dtype == np.float32 and 1e2 / 1.1 <= p.cond <= 1e5 * 1.1
>>> check()
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ._names import STRATEGIES
from .families import (
    EASY,
    HERMITIAN,
    NONSINGULAR,
    REAL_DTYPES,
    LinearSystem,
    build_system,
    max_cond,
)

__all__ = list(STRATEGIES)

seeds = st.integers(min_value=0, max_value=2**32 - 1)

#: Families whose ``cond`` argument sets the condition number.
_COND_FAMILIES = ("ill_conditioned", "ill_conditioned_spd", "nearly_singular")


def conds(dtype, min_cond: float = 1e2, max_cond_: float | None = None) -> st.SearchStrategy:
    """Condition numbers, log-uniform, up to :func:`~krylovadv.testing.max_cond` of ``dtype``."""
    top = max_cond(dtype) if max_cond_ is None else max_cond_
    return st.floats(np.log10(min_cond), np.log10(top)).map(lambda e: float(10.0**e))


def _build(draw, family: str, n: int, dtype, max_cond: float | None = None) -> LinearSystem:
    """Build one system of ``family``, drawing its seed and (if it has one) its condition number."""
    cond = draw(conds(dtype, max_cond_=max_cond)) if family in _COND_FAMILIES else None
    return build_system(family, n, draw(seeds), dtype, cond=cond)


@st.composite
def linear_systems(
    draw,
    families=NONSINGULAR,
    dtypes=REAL_DTYPES[:1],
    min_n: int = 2,
    max_n: int = 30,
    max_cond: float | None = None,
) -> LinearSystem:
    """One :class:`~krylovadv.testing.LinearSystem` from ``families`` in one of ``dtypes``.

    Parameters
    ----------
    families : sequence of str
        Names from :data:`~krylovadv.testing.EASY` and :data:`~krylovadv.testing.HARD`.
    dtypes : sequence of dtype
        float32/float64/complex64/complex128.
    min_n, max_n : int
        Size range.
    max_cond : float, optional
        Upper bound on the drawn condition number of the ill-conditioned
        families (default: the dtype's :data:`~krylovadv.testing.MAX_COND`).
    """
    family = draw(st.sampled_from(families))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    n = draw(st.integers(min_n, max_n))
    return _build(draw, family, n, dtype, max_cond)


def quadratics(
    families=NONSINGULAR, dtypes=REAL_DTYPES[:1], min_n: int = 2, max_n: int = 30
) -> st.SearchStrategy:
    r"""Quadratics :math:`f(x) = \tfrac12 x^{*}Ax + b^{*}x` (value, exact gradient and Hessian).

    The same objects as :func:`linear_systems`; pass
    ``families=krylovadv.testing.HERMITIAN`` for quadratics whose gradient is
    :math:`Ax + b` and whose Hessian is :math:`A` itself.
    """
    return linear_systems(families, dtypes, min_n, max_n)


def matrices(families=EASY, dtypes=REAL_DTYPES[:1], min_n: int = 2, max_n: int = 30):
    """Square matrices ``A`` of the families (the operators of :func:`linear_systems`)."""
    return linear_systems(families, dtypes, min_n, max_n).map(lambda p: p.A)


@st.composite
def system_batches(
    draw,
    families=NONSINGULAR,
    dtypes=REAL_DTYPES[:1],
    min_n: int = 2,
    max_n: int = 20,
    min_batch: int = 2,
    max_batch: int = 5,
) -> list[LinearSystem]:
    """Draw a list of systems of one size and dtype (families may differ): a batch."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    n = draw(st.integers(min_n, max_n))
    size = draw(st.integers(min_batch, max_batch))
    out = []
    for _ in range(size):
        out.append(_build(draw, draw(st.sampled_from(families)), n, dtype))
    return out


#: The suite's historic name for :func:`system_batches`.
quadratic_batches = system_batches

#: Hermitian families, for strategies of quadratics with exact Hessian ``A``.
HERMITIAN_FAMILIES = HERMITIAN
