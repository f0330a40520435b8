r"""Confidence intervals of accuracies and of accuracy differences (95 % by default).

:func:`wilson_interval` is scipy's Wilson score interval
(``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``); it is the one
definition of the interval in the adapter (:mod:`krylovadv.torch.evaluate`
re-exports it for the reports and the ``reproduce`` verdicts).
:func:`difference_interval` is Newcombe's hybrid score interval (method 10 of
Newcombe, *Interval estimation for the difference between independent
proportions: comparison of eleven methods*, Stat. Med. 17, 1998), built from two
Wilson intervals.  It is hand-written because scipy has no interval for a
difference of proportions (``binomtest`` covers one proportion only).

This module imports neither :mod:`krylovadv.torch.evaluate` nor anything that
does, so that the evaluation can use the masking diagnostics without a cycle.
"""

from __future__ import annotations

import math

from scipy.stats import binomtest

__all__ = ["difference_interval", "wilson_interval"]


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Return the Wilson score interval of ``successes / total`` (``(0, 1)`` when ``total`` is 0).

    Parameters
    ----------
    successes, total : int
        Counts, ``0 <= successes <= total``.
    confidence : float
        Two-sided level.

    Returns
    -------
    tuple of float
        Lower and upper bounds in [0, 1].
    """
    if total == 0:
        return 0.0, 1.0
    ci = binomtest(int(successes), int(total)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(ci.low), float(ci.high)


def difference_interval(
    correct_a: int, total_a: int, correct_b: int, total_b: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    r"""Newcombe's hybrid score interval for :math:`p_a - p_b`.

    With Wilson intervals :math:`[l_a, u_a]`, :math:`[l_b, u_b]` and
    :math:`d = \hat p_a - \hat p_b`:

    .. math::
        \Bigl[d - \sqrt{(\hat p_a - l_a)^2 + (u_b - \hat p_b)^2},\;
              d + \sqrt{(u_a - \hat p_a)^2 + (\hat p_b - l_b)^2}\Bigr].

    Parameters
    ----------
    correct_a, total_a, correct_b, total_b : int
        Counts of the two proportions (``0 <= correct <= total``, ``total >= 1``).
    confidence : float
        Two-sided level.

    Returns
    -------
    difference, low, high : float
        :math:`d` and its interval, in [-1, 1].
    """
    for name, correct, total in (("a", correct_a, total_a), ("b", correct_b, total_b)):
        if total < 1 or not 0 <= correct <= total:
            raise ValueError(
                f"need 0 <= correct_{name} <= total_{name} and total_{name} >= 1; "
                f"got {correct}/{total}."
            )
    p_a, p_b = correct_a / total_a, correct_b / total_b
    l_a, u_a = wilson_interval(correct_a, total_a, confidence)
    l_b, u_b = wilson_interval(correct_b, total_b, confidence)
    d = p_a - p_b
    low = d - math.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2)
    high = d + math.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)
    return d, max(-1.0, low), min(1.0, high)
