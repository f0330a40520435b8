"""Verdict functions on planted result tables (no model calls)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from krylovadv.torch.intervals import difference_interval
from krylovadv.torch.reproduce.verdicts import (
    Claim,
    claim_verdict,
    claims_about,
    combine,
    compare,
    compare_cells,
    so_table1_claims,
    soae_table1_claims,
    tuned_and_default_verdicts,
)

N = 500
# With 250/500 correct under PGD, S-O at 219/500 is the weakest significant win
# (Newcombe lower bound +0.0002) and 220/500 the first tie (lower bound -0.0018).
JUST_INSIDE, JUST_OUTSIDE = 219, 220


def test_difference_interval_matches_newcombe_example() -> None:
    # Newcombe (1998), Table II, example (a): 56/70 - 48/80, method 10: [0.0524, 0.3339].
    d, low, high = difference_interval(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert low == pytest.approx(0.0524, abs=1e-4)
    assert high == pytest.approx(0.3339, abs=1e-4)


@given(
    st.integers(1, 400).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(0, n))
    )
)
def test_difference_interval_contains_estimate_and_is_antisymmetric(args) -> None:
    n, a, b = args
    d, low, high = difference_interval(a, n, b, n)
    assert low <= d <= high
    d2, low2, high2 = difference_interval(b, n, a, n)
    assert d2 == pytest.approx(-d)
    assert (low2, high2) == pytest.approx((-high, -low))


def test_difference_interval_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="correct_a"):
        difference_interval(5, 4, 1, 4)
    with pytest.raises(ValueError, match="total_b"):
        difference_interval(1, 4, 0, 0)


def test_compare_boundary_just_inside_and_just_outside() -> None:
    table = {"m": {"PGD": 250, "in": JUST_INSIDE, "out": JUST_OUTSIDE, "worse": 290}}
    assert compare(table, N, "m", "in", "PGD").outcome == "stronger"
    assert compare(table, N, "m", "out", "PGD").outcome == "tied"
    assert compare(table, N, "m", "worse", "PGD").outcome == "weaker"
    c = compare(table, N, "m", "in", "PGD")
    assert c.gap == pytest.approx(100 * 31 / 500)
    with pytest.raises(KeyError, match="SOAE"):
        compare(table, N, "m", "SOAE", "PGD")


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        (["stronger", "stronger"], "holds"),
        (["stronger", "tied"], "partly"),
        (["tied", "weaker"], "does not hold"),
    ],
)
def test_claim_verdict(outcomes, verdict) -> None:
    assert claim_verdict(outcomes) == verdict


def test_claim_verdict_accepting_ties_and_empty() -> None:
    assert claim_verdict(["tied", "stronger"], accept=("stronger", "tied")) == "holds"
    assert claim_verdict(["weaker", "tied"], accept=("stronger", "tied")) == "partly"
    with pytest.raises(ValueError, match="at least one"):
        claim_verdict([])


def test_combine() -> None:
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["does not hold", "does not hold"]) == "does not hold"
    assert combine(["holds", "does not hold"]) == "partly"
    assert combine(["partly", "does not hold"]) == "partly"


def _so_table(so_l2: int, so_linf: int, base: int = 250) -> dict[str, dict[str, int]]:
    row = {
        "PGD (ℓ2, 4.0)": base,
        "PGD (ℓ∞, 0.3)": base,
        "S-O (ℓ2, 4.0)": so_l2,
        "S-O (ℓ∞, 0.3)": so_linf,
        "best (ℓ2, 4.0)": base,
        "best (ℓ∞, 0.3)": base,
    }
    return {"pgd-linf": dict(row), "trades": dict(row)}


@pytest.mark.parametrize(
    ("so_l2", "so_linf", "verdicts", "overall"),
    [
        # S-O just significantly stronger everywhere: every claim holds.
        (JUST_INSIDE, JUST_INSIDE, ["holds", "holds", "holds"], "holds"),
        # One count more and every gap is a tie: nothing holds.
        (JUST_OUTSIDE, JUST_OUTSIDE, ["does not hold"] * 3, "does not hold"),
        # Only the ℓ2 cells win: claims 1 and 3 partly, claim 2 holds.
        (JUST_INSIDE, JUST_OUTSIDE, ["partly", "holds", "partly"], "partly"),
    ],
)
def test_so_table1_claims_planted(so_l2, so_linf, verdicts, overall) -> None:
    claims = so_table1_claims(
        _so_table(so_l2, so_linf),
        N,
        robust_models=["pgd-linf", "trades"],
        linf_models=["pgd-linf", "trades"],
        baseline="best",
    )
    assert [c.verdict for c in claims] == verdicts
    assert combine([c.verdict for c in claims]) == overall
    assert "S-O" in claims[0].summary()


def test_tuned_and_default_verdicts_check_both_tables() -> None:
    models = {
        "robust_models": ["pgd-linf", "trades"],
        "linf_models": ["pgd-linf", "trades"],
        "baseline": "best",
    }
    tuned = _so_table(JUST_INSIDE, JUST_INSIDE)
    defaults = _so_table(JUST_INSIDE, JUST_OUTSIDE)
    claims, verdict, reason, default_verdict = tuned_and_default_verdicts(
        so_table1_claims, tuned, defaults, N, testable=True, none_reason="unused", **models
    )
    assert [c.summary() for c in claims] == [
        c.summary() for c in so_table1_claims(tuned, N, **models)
    ]
    assert (verdict, default_verdict) == ("holds", "partly")
    assert reason.startswith("(1) ") and "(3) " in reason
    untested = tuned_and_default_verdicts(
        so_table1_claims, tuned, defaults, N, testable=False, none_reason="no model", **models
    )
    assert untested == ([], "does not hold", "no model", "n/a")


def _soae_table(soae: int, soat_base: int) -> dict[str, dict[str, int]]:
    return {
        "pgd-linf": {"PGD": 250, "SOAE": soae, "best": 250},
        "trades": {"PGD": 250, "SOAE": soae, "best": 250},
        "soat": {"PGD": 250, "SOAE": soae, "best": soat_base},
    }


@pytest.mark.parametrize(
    ("soae", "soat_base", "verdicts", "overall"),
    [
        # SOAE significantly below PGD and the baseline; SOAT significantly more robust.
        (JUST_INSIDE, 281, ["holds", "holds", "holds"], "holds"),
        # SOAE significantly weaker than PGD and the baseline; SOAT tied.
        (290, 250, ["does not hold", "does not hold", "does not hold"], "does not hold"),
        # SOAE tied with both: claim 2 (at least as strong) holds, the others do not.
        (JUST_OUTSIDE, 250, ["does not hold", "holds", "does not hold"], "partly"),
    ],
)
def test_soae_table1_claims_planted(soae, soat_base, verdicts, overall) -> None:
    claims = soae_table1_claims(
        _soae_table(soae, soat_base),
        N,
        robust_models=["pgd-linf", "trades"],
        soat_model="soat",
        baseline="best",
    )
    assert [c.verdict for c in claims] == verdicts
    assert combine([c.verdict for c in claims]) == overall


def test_soat_boundary() -> None:
    # 250 vs 281 of 500 is the smallest significant SOAT advantage; 280 is a tie.
    for soat_base, verdict in ((281, "holds"), (280, "does not hold")):
        claims = soae_table1_claims(
            _soae_table(JUST_INSIDE, soat_base),
            N,
            robust_models=["pgd-linf", "trades"],
            soat_model="soat",
            baseline="best",
        )
        assert claims[2].verdict == verdict


def test_the_evaluation_and_the_verdicts_share_one_wilson_interval() -> None:
    # One definition (scipy's, checked against the closed form in test_evaluate.py):
    # the reports and the masking/verdict intervals cannot drift apart.
    from krylovadv.torch import evaluate, intervals

    assert evaluate.wilson_interval is intervals.wilson_interval


def test_claims_about_matches_the_model_name_exactly() -> None:
    # pgd-linf is a suffix of madry-pgd-linf: a flag on one must not bear on the other's claims.
    table = {
        "madry-pgd-linf": {"SOAE": 200, "PGD": 210, "Cascade": 190},
        "pgd-linf": {"SOAE": 300, "PGD": 310, "Cascade": 290},
    }
    claims = [
        Claim("a", [compare(table, N, "madry-pgd-linf", "SOAE", "PGD")], ("stronger",), "holds"),
        Claim("b", [compare(table, N, "pgd-linf", "SOAE", "Cascade")], ("stronger",), "holds"),
        Claim(
            "c",
            [compare_cells(table, N, ("pgd-linf", "SOAE"), ("madry-pgd-linf", "SOAE"))],
            ("stronger",),
            "holds",
        ),
    ]
    assert claims_about("madry-pgd-linf", claims) == [1, 3]
    assert claims_about("pgd-linf", claims) == [2, 3]
    assert claims_about("natural", claims) == []
