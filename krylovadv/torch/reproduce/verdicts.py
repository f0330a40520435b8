r"""Verdicts on the papers' claims: pure functions of the result tables (no model calls).

A *result table* maps a model name to ``{column: correctly classified count}``;
every column of a table is measured on the same ``total`` reporting digits.
An attack :math:`A` is *stronger* than an attack :math:`B` on a model when the
95 % interval of the accuracy difference :math:`\mathrm{acc}_B - \mathrm{acc}_A`
lies entirely above zero, *weaker* when it lies entirely below, and *tied*
otherwise (:func:`compare`).  The interval is Newcombe's hybrid score interval
for a difference of two proportions (method 10 of Newcombe, *Interval
estimation for the difference between independent proportions*, Stat. Med.
1998), built from the Wilson intervals of the two accuracies.  It treats the
two accuracies as independent; on the same digits they are positively
correlated, so the interval is conservative (a claim is called "holds" only
when the difference is clear).

A claim is a list of such comparisons; :func:`claim_verdict` turns it into
"holds" (every comparison goes the claimed way), "does not hold" (none does)
or "partly".  The experiment-level verdict combines the claims the same way
(:func:`combine`).

Claims checked (by the papers' authors and titles):

- Li et al., *On Norm-Agnostic Robustness of Adversarial Training* (Table 1):
  :func:`so_table1_claims` — (1) S-O lowers the accuracy of adversarially
  trained models more than PGD of the same norm and radius; (2) most of all,
  an :math:`\ell_2` S-O attack breaks :math:`\ell_\infty`-trained models that
  PGD :math:`\ell_2` does not; (3) S-O is stronger than the strongest
  first-order baseline.
- Qian et al., *Hessian-Free Second-Order Adversarial Examples for Adversarial
  Learning* (Table I): :func:`soae_table1_claims` — (1) SOAE lowers accuracy
  more than PGD; (2) SOAE is at least as strong as an AutoAttack-grade
  first-order baseline (their Table I puts SOAE below AutoAttack on the PGD and
  TRADES models); (3) the SOAT model is the most robust under that baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..intervals import difference_interval

__all__ = [
    "Claim",
    "Comparison",
    "claim_verdict",
    "claims_about",
    "combine",
    "compare",
    "compare_cells",
    "difference_interval",
    "so_table1_claims",
    "soae_table1_claims",
    "tuned_and_default_verdicts",
]

Outcome = Literal["stronger", "tied", "weaker"]
Verdict = Literal["holds", "does not hold", "partly"]
Table = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Comparison:
    r"""Cell ``a`` against cell ``b`` (accuracy gap in points; a cell is model and column).

    Attributes
    ----------
    a, b : str
        The two cells, ``"model: column"``.
    gap, low, high : float
        :math:`100(\mathrm{acc}_b - \mathrm{acc}_a)` and its 95 % interval
        (positive: fewer digits survive in cell ``a``).
    outcome : {"stronger", "tied", "weaker"}
        "stronger": the interval lies above 0 (``a`` leaves significantly fewer
        digits correct); "weaker": below 0; "tied": it contains 0.
    """

    a: str
    b: str
    gap: float
    low: float
    high: float
    outcome: Outcome

    def __str__(self) -> str:
        return (
            f"{self.a} vs {self.b}: {self.gap:+.1f} [{self.low:+.1f}, {self.high:+.1f}] points "
            f"({self.outcome})"
        )


def _count(table: Table, model: str, column: str) -> int:
    if model not in table:
        raise KeyError(f"model {model!r} is not in the table (rows: {sorted(table)}).")
    if column not in table[model]:
        raise KeyError(
            f"column {column!r} is missing on {model!r} (columns: {sorted(table[model])})."
        )
    return int(table[model][column])


def compare_cells(table: Table, total: int, a: tuple[str, str], b: tuple[str, str]) -> Comparison:
    """Compare cell ``a = (model, column)`` with cell ``b`` (see :class:`Comparison`).

    Raises
    ------
    KeyError
        If a model or a column is missing from the table (naming it).
    """
    gap, low, high = difference_interval(_count(table, *b), total, _count(table, *a), total)
    outcome: Outcome = "stronger" if low > 0 else ("weaker" if high < 0 else "tied")
    return Comparison(
        f"{a[0]}: {a[1]}", f"{b[0]}: {b[1]}", 100 * gap, 100 * low, 100 * high, outcome
    )


def compare(table: Table, total: int, model: str, attack: str, other: str) -> Comparison:
    """Attack column ``attack`` against column ``other`` on one ``model``."""
    return compare_cells(table, total, (model, attack), (model, other))


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, its comparisons and its verdict.

    Attributes
    ----------
    text : str
        The claim, in words.
    comparisons : list of Comparison
        The evidence.
    accept : tuple of str
        Outcomes that support the claim: ``("stronger",)`` for "lower than",
        ``("stronger", "tied")`` for "at least as strong as".
    verdict : {"holds", "does not hold", "partly"}
    """

    text: str
    comparisons: list[Comparison]
    accept: tuple[str, ...]
    verdict: Verdict

    def summary(self) -> str:
        """One line: verdict, claim and the comparisons."""
        evidence = "; ".join(str(c) for c in self.comparisons)
        return f"**{self.verdict}** — {self.text}: {evidence}"


def claims_about(model: str, claims: Sequence[Claim]) -> list[int]:
    """Return the 1-based numbers of the claims with a cell of ``model`` in a comparison.

    A masking flag on a model bears on exactly these claims.  Cells are
    ``"model: column"``; the model part must equal ``model`` (``"pgd-linf"`` is
    not ``"madry-pgd-linf"``, which a substring test would confuse).
    """
    return [
        i + 1
        for i, claim in enumerate(claims)
        if any(cell.split(": ", 1)[0] == model for c in claim.comparisons for cell in (c.a, c.b))
    ]


def claim_verdict(outcomes: Sequence[str], accept: Sequence[str] = ("stronger",)) -> Verdict:
    """Return 'holds' if every outcome is in ``accept``, 'does not hold' if none is, else 'partly'.

    Raises
    ------
    ValueError
        On an empty sequence (no evidence is not a verdict).
    """
    if not outcomes:
        raise ValueError("a claim needs at least one comparison.")
    hits = sum(o in accept for o in outcomes)
    if hits == len(outcomes):
        return "holds"
    return "does not hold" if hits == 0 else "partly"


def combine(verdicts: Sequence[str]) -> Verdict:
    """Experiment verdict: 'holds' if all claims hold, 'does not hold' if none holds at all."""
    if not verdicts:
        raise ValueError("combine needs at least one claim verdict.")
    if all(v == "holds" for v in verdicts):
        return "holds"
    if all(v == "does not hold" for v in verdicts):
        return "does not hold"
    return "partly"


def tuned_and_default_verdicts(
    claims_of: Callable[..., list[Claim]],
    tuned: Table,
    defaults: Table,
    total: int,
    *,
    testable: bool,
    none_reason: str,
    **models: Any,
) -> tuple[list[Claim], Verdict, str, str]:
    """Check a table's claims on the tuned and on the authors' settings.

    Parameters
    ----------
    claims_of : callable
        :func:`so_table1_claims` or :func:`soae_table1_claims`.
    tuned, defaults : Table
        Counts with the tuned settings and with the authors' settings.
    total : int
        Reporting samples per cell.
    testable : bool
        Whether the models that were run can test the claims at all.
    none_reason : str
        The reason given when ``testable`` is false (the verdict is then
        'does not hold': an untested claim does not hold).
    **models
        The model lists (and baseline) ``claims_of`` takes, passed on unchanged.

    Returns
    -------
    claims, verdict, reason, default_verdict
        The tuned claims, their combined verdict and the reason listing them, and
        the combined verdict with the authors' settings (``"n/a"`` without claims).
    """
    if not testable:
        return [], "does not hold", none_reason, "n/a"
    claims = claims_of(tuned, total, **models)
    default_claims = claims_of(defaults, total, **models)
    reason = " ".join(f"({i + 1}) {c.summary()}." for i, c in enumerate(claims))
    return (
        claims,
        combine([c.verdict for c in claims]),
        reason,
        combine([c.verdict for c in default_claims]),
    )


def _claim(
    text: str, comparisons: list[Comparison], accept: tuple[str, ...] = ("stronger",)
) -> Claim:
    return Claim(text, comparisons, accept, claim_verdict([c.outcome for c in comparisons], accept))


def so_table1_claims(
    table: Table,
    total: int,
    *,
    robust_models: Sequence[str],
    linf_models: Sequence[str],
    baseline: str | None = None,
) -> list[Claim]:
    r"""Check the claims of Li et al.'s Table 1 on a table of tuned attacks.

    Columns used: ``"PGD (ℓ2, 4.0)"``, ``"PGD (ℓ∞, 0.3)"``, ``"S-O (ℓ2, 4.0)"``,
    ``"S-O (ℓ∞, 0.3)"`` and, if given, the ``baseline`` columns
    ``f"{baseline} (ℓ2, 4.0)"`` and ``f"{baseline} (ℓ∞, 0.3)"``.

    Parameters
    ----------
    table : mapping
        Model → column → correct count on ``total`` digits.
    total : int
        Reporting digits per cell.
    robust_models : sequence of str
        Adversarially trained models (claims 1 and 3).
    linf_models : sequence of str
        The :math:`\ell_\infty`-trained ones among them (claim 2).
    baseline : str, optional
        Name of the strongest first-order baseline's columns (claim 3).

    Returns
    -------
    list of Claim
    """
    cells = (("ℓ2", "4.0"), ("ℓ∞", "0.3"))

    def every_cell(reference: str) -> list[Comparison]:
        # S-O against ``reference`` on each robust model, norm and radius.
        return [
            compare(table, total, m, f"S-O ({n}, {e})", f"{reference} ({n}, {e})")
            for m in robust_models
            for n, e in cells
        ]

    claims = [
        _claim(
            "S-O lowers accuracy more than PGD of the same norm and radius",
            every_cell("PGD"),
        ),
        _claim(
            "ℓ2 S-O (ε = 4.0) breaks ℓ∞-trained models more than PGD ℓ2 does",
            [compare(table, total, m, "S-O (ℓ2, 4.0)", "PGD (ℓ2, 4.0)") for m in linf_models],
        ),
    ]
    if baseline is not None:
        claims.append(
            _claim(
                f"S-O is stronger than the strongest first-order baseline ({baseline})",
                every_cell(baseline),
            )
        )
    return claims


def soae_table1_claims(
    table: Table,
    total: int,
    *,
    robust_models: Sequence[str],
    soat_model: str | None,
    baseline: str,
) -> list[Claim]:
    """Check the claims of Qian et al.'s Table I (MNIST) on a table of tuned attacks.

    Columns used: ``"SOAE"``, ``"PGD"`` and ``baseline``.

    Parameters
    ----------
    table : mapping
        Model → column → correct count on ``total`` digits.
    total : int
        Reporting digits per cell.
    robust_models : sequence of str
        Adversarially trained models other than SOAT.
    soat_model : str, optional
        The SOAT model (claim 3 is skipped if ``None``).
    baseline : str
        Column of the strongest first-order baseline.

    Returns
    -------
    list of Claim
    """
    attacked = list(robust_models) + ([soat_model] if soat_model else [])
    claims = [
        _claim(
            "SOAE lowers accuracy more than PGD",
            [compare(table, total, m, "SOAE", "PGD") for m in attacked],
        ),
        _claim(
            f"SOAE is at least as strong as an AutoAttack-grade baseline ({baseline})",
            [compare(table, total, m, "SOAE", baseline) for m in attacked],
            accept=("stronger", "tied"),
        ),
    ]
    if soat_model is not None:
        # "SOAT is the most robust": the baseline leaves significantly fewer digits
        # correct on every other robust model than on SOAT.
        claims.append(
            _claim(
                "SOAT is the most robust model (under the baseline)",
                [
                    compare_cells(table, total, (m, baseline), (soat_model, baseline))
                    for m in robust_models
                ],
            )
        )
    return claims
