"""The S-O / SOAE reproductions (so-fig1, so-table1, soae-table1) on tiny settings."""

from __future__ import annotations

import pytest

from krylovadv.torch.reproduce import (
    ExperimentResult,
    run_experiment,
    so_fig1,
    so_table1,
    soae_table1,
)

VERDICTS = {"holds", "does not hold", "partly"}


def _check(result: ExperimentResult, name: str, samples: int) -> None:
    assert isinstance(result, ExperimentResult)
    assert result.name == name
    assert result.samples == samples
    assert result.verdict in VERDICTS
    assert result.reason
    assert "paper" in result.table
    assert result.notes
    assert "#" in result.to_markdown()


def test_so_table1_tiny(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(so_table1, "QUICK", {"samples": 6, "steps": 2, "noise_samples": 1})
    result = run_experiment("so-table1", output=tmp_path)
    _check(result, "so-table1", 6)
    # ours next to the paper's: a CI cell and a paper number on the TRADES rows
    assert "% [" in result.table and "41.04 %" in result.table and "95.6 %" in result.table
    assert "not available" in result.table
    assert set(result.data["counts"]) == {
        "pgd-l2",
        "pgd-linf",
        "mixed",
        "trades-l2",
        "trades",
        "trades-mix",
        "ensemble",
    }
    assert (tmp_path / "so-table1" / "report.md").is_file()


def test_so_fig1_tiny(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(so_fig1, "QUICK", {"samples": 6, "steps": 2, "noise_samples": 1})
    result = run_experiment("so-fig1", output=tmp_path)
    _check(result, "so-fig1", 6)
    assert result.figures == ["so_fig1_grad_norm.png"]
    assert (tmp_path / "so-fig1" / "so_fig1_grad_norm.png").stat().st_size > 0
    for norm in ("linf", "l2"):
        curves = result.data["curves"][norm]
        assert set(curves) == set(so_fig1.CURVES)
        assert all(len(v) == 3 for v in curves.values())  # steps + 1 points
    no_output = run_experiment("so-fig1", output=None)
    assert no_output.figures == []


def test_soae_table1_tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        soae_table1,
        "QUICK",
        {
            "samples": 6,
            "pgd_steps": 2,
            "so_steps": 2,
            "noise_samples": 1,
            "soae_steps": 1,
            "apgd_steps": 2,
        },
    )
    result = run_experiment("soae-table1", output=None)
    _check(result, "soae-table1", 6)
    assert "97.78 / 99.9 %" in result.table and "% [" in result.table
    counts = result.data["counts"]
    assert set(counts) == {"natural", "pgd-linf", "trades", "soat"}
    for row in counts.values():
        assert all(0 <= row[c] <= row["Clean"] <= 6 for c in soae_table1.COLUMNS)
