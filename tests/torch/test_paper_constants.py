"""The paper numbers the reproductions print match an independent transcription.

The rows below were copied by hand from Li et al., *On Norm-Agnostic Robustness
of Adversarial Training*, Table 1 (accuracy %, MNIST) and its text (S-O with
ℓ2 ≤ 2.0 on TRADES: 41.04 %), column order Madry ℓ2 ℓ∞ mix, TRADES ℓ2 ℓ∞ mix,
Ensemble ℓ2 ℓ∞ mix, ATDA ℓ2 ℓ∞ mix.  The reproduction keeps its own copy
(``so_table1.PAPER``); a typo in either shows here.
"""

from __future__ import annotations

import pytest

from krylovadv.torch.reproduce import so_table1

TABLE_1 = """
Natural   98.2 98.8 98.7 99.4 99.5 99.4 99.4 99.0 98.7 99.2 98.8 99.0
PGD-l2    97.0 92.8 73.2 91.7 91.7 90.4 99.0 65.3 58.2 98.8 63.6 57.9
PGD-linf   0.4 92.5 82.2 19.7 95.6 15.3  0.0 90.2 81.4  0.0 62.6 81.3
S-O-l2    96.6  0.0 18.3 81.7  3.2 84.2 98.9 65.8 58.4 97.2 64.0 56.8
S-O-linf   0.0 91.3 84.2 16.9 94.7 14.5  0.0 88.9 82.1  0.0 61.3 83.4
"""
COLUMNS = [
    f"{method} {norm}"
    for method in ("Madry", "TRADES", "Ensemble", "ATDA")
    for norm in ("ℓ2", "ℓ∞", "mix")
]
ROWS = {
    "Natural": "Natural",
    "PGD-l2": "PGD (ℓ2, 4.0)",
    "PGD-linf": "PGD (ℓ∞, 0.3)",
    "S-O-l2": "S-O (ℓ2, 4.0)",
    "S-O-linf": "S-O (ℓ∞, 0.3)",
}


def transcription() -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {c: {} for c in COLUMNS}
    for line in TABLE_1.strip().splitlines():
        label, *values = line.split()
        for column, value in zip(COLUMNS, values, strict=True):
            table[column][ROWS[label]] = float(value)
    return table


def test_every_paper_cell_in_the_code_matches_the_transcription():
    expected = transcription()
    assert set(so_table1.PAPER) <= set(expected), set(so_table1.PAPER) - set(expected)
    checked = 0
    for model, cells in so_table1.PAPER.items():
        for attack, value in cells.items():
            if attack == "S-O (ℓ2, 2.0)":
                want = 41.04 if model == "TRADES ℓ∞" else None
                assert value == want, (model, attack, value)
            else:
                assert value == pytest.approx(expected[model][attack], abs=1e-9), (model, attack)
            checked += 1
    assert checked >= 5 * len(so_table1.PAPER)
