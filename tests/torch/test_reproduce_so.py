"""The S-O / SOAE reproductions (so-fig1, so-table1, soae-table1) on tiny settings."""

from __future__ import annotations

import pytest

from krylovadv.torch.reproduce import (
    ExperimentResult,
    ReproduceOptions,
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


TINY_SO = {
    "tuning": 6,
    "reporting": 8,
    "steps": 2,
    "noise_samples": 1,
    "noise_grid": [1],
    "sigma_grid": [0.3, 0.7],
    "baseline_steps": 2,
    "targets": 2,
    "square_queries": 3,
    "masking_long_steps": 3,
    "models": ["pgd-linf", "trades"],
}


def test_so_table1_tiny(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(so_table1, "QUICK", TINY_SO)
    # one part of one model computed first (as by another process), the rest by the run
    folder = ReproduceOptions(output=tmp_path / "so-table1")
    assert so_table1.compute_parts(folder, "pgd-linf", ["S-O (ℓ2, 4.0)"]) is None
    assert (tmp_path / "so-table1" / "models" / "pgd-linf" / "S-O_l2_4.0.json").is_file()
    result = run_experiment("so-table1", output=tmp_path)
    parts = result.data["runs"]["pgd-linf"]["parts"]
    assert parts["S-O (ℓ2, 4.0)"]["resumed"] is True
    assert not parts["S-O (ℓ∞, 0.3)"]["resumed"] and not parts["baseline"]["resumed"]
    # the model's CPU time adds up its parts'
    cpu = result.data["runs"]["pgd-linf"]["cpu_seconds"]
    assert cpu == pytest.approx(sum(r["cpu_seconds"] for r in parts.values()))
    _check(result, "so-table1", 8)
    # authors' defaults and tuned rows next to the paper's numbers
    assert "authors' defaults" in result.table and "**tuned**" in result.table
    assert "41.04 %" in result.table and "95.6 %" in result.table and "% [" in result.table
    assert "Li et al." in result.title and "seed 0" not in result.title.lower()
    data = result.data
    assert set(data["tuned_counts"]) == {"pgd-linf", "trades"}
    for name in ("pgd-linf", "trades"):
        tuned, default = data["tuned_counts"][name], data["default_counts"][name]
        for column in so_table1.COLUMNS:
            if column in tuned:
                assert 0 <= tuned[column] <= tuned["Natural"] <= 8
        # S-O ℓ2 2.0 only where the paper has a number (TRADES)
        assert ("S-O (ℓ2, 2.0)" in tuned) == (name == "trades")
        # the tuned setting never does worse than the defaults on the tuning digits
        for record in data["tuning"]:
            assert record["chosen_correct"] <= record["default_correct"]
        assert set(default) == set(tuned)
    # the chosen settings are reported, and the tuned S-O ℓ2 2.0 reuses ℓ2 4.0's
    chosen = data["chosen"]["trades"]
    assert chosen["S-O (ℓ2, 2.0)"] == chosen["S-O (ℓ2, 4.0)"]
    assert "sigma" in result.table and "Tuning" in result.table
    assert set(data["masking"]) == {"pgd-linf", "trades"}
    assert result.figures == ["so_table1_sigma_l2.png", "so_table1_sigma_linf.png"]
    for figure in result.figures:
        assert (tmp_path / "so-table1" / figure).stat().st_size > 0
    assert (tmp_path / "so-table1" / "report.md").is_file()
    assert not any(run["resumed"] for run in data["runs"].values())
    # a second run into the same folder reads every model back instead of recomputing
    again = run_experiment("so-table1", output=tmp_path)
    assert all(run["resumed"] for run in again.data["runs"].values())
    assert again.data["tuned_counts"] == data["tuned_counts"]
    assert again.data["default_counts"] == data["default_counts"]
    assert again.table == result.table and again.verdict == result.verdict
    assert "Read back from the per-model results" in again.notes[-1]


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
        dict(
            soae_table1.QUICK,
            tuning=6,
            reporting=6,
            pgd_steps=2,
            soae_steps=[1],
            max_krylov_dim=2,
            tau_grid=[1e-3],
            shift_grid=[0.0, 1.0],
            eta_grid=[1e-5, 1e-2],
            baseline_steps=2,
            targets=2,
            square_queries=3,
            masking_long_steps=3,
            # small CNNs (fast); a second PGD-row model, like the quick scale's
            # same-architecture reference for SOAT
            models={
                "natural": "STD",
                "pgd-linf": "PGD",
                "trades": "TRADES",
                "soat": "SOAT",
                "pgd-l2": "PGD",
            },
            untuned=["natural"],
        ),
    )
    result = run_experiment("soae-table1", output=None)
    _check(result, "soae-table1", 6)
    assert "97.78 / 99.9 %" in result.table and "% [" in result.table
    assert "Qian et al." in result.title and "authors' settings" in result.table
    counts = result.data["tuned_counts"]
    assert set(counts) == {"natural", "pgd-linf", "trades", "soat", "pgd-l2"}
    # the paper's PGD row is shown once, under the first model of that row
    assert result.table.count("| PGD: paper (ResNet18 / WideResNet)") == 1
    assert "| PGD (pgd-l2) | **tuned** |" in result.table
    # every PGD/TRADES model is compared with SOAT (claim 3), the reference included
    soat_claim = result.data["claims"][2]
    for name in ("pgd-linf", "trades", "pgd-l2"):
        assert f"{name}: Cascade vs soat: Cascade" in soat_claim
    for row in counts.values():
        assert all(0 <= row[c] <= row["Clean"] <= 6 for c in soae_table1.COLUMNS)
    soae = [r for r in result.data["tuning"] if r["attack"] == "SOAE"]
    assert {r["model"] for r in soae} == {"natural", "pgd-linf", "trades", "soat", "pgd-l2"}
    # natural searches only step mode, fallback and HVP method
    natural = next(r for r in soae if r["model"] == "natural")
    assert list(natural["sweeps"]) == ["step_mode", "fallback", "hvp"]
    assert result.figures == []  # no output folder
    assert len(result.data["claims"]) == 3
