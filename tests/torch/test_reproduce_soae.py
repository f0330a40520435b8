"""Reproductions of Qian et al. (Table IV, Table V, Fig. 1, Fig. 3) on tiny settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from krylovadv.torch.reproduce import (
    ReproduceOptions,
    soae_eta,
    soae_iters,
    soae_krylov_dim,
    soae_psnr,
)

VERDICTS = {"holds", "does not hold", "partly"}


def _check(result, tmp_path, figure: bool = True) -> None:
    assert result.verdict in VERDICTS
    assert result.reason
    assert "paper" in result.table
    if figure:
        assert result.figures
        for name in result.figures:
            assert (tmp_path / name).is_file()
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------ SSIM / PSNR
def test_ssim_identical_is_one() -> None:
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(soae_psnr.ssim(x, x), torch.ones(3, dtype=torch.float64))


def test_ssim_constant_images_closed_form() -> None:
    # Constant images a and b: zero local variances, so the contrast-structure term
    # is C2/C2 = 1 and SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly.
    a, b = 0.2, 0.7
    c1 = 0.01**2
    got = soae_psnr.ssim(
        torch.full((20, 20), a, dtype=torch.float64), torch.full((20, 20), b, dtype=torch.float64)
    )
    assert float(got) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-12)


def test_ssim_matches_direct_formula_on_one_window() -> None:
    # An 11x11 image has exactly one 'valid' window: SSIM is the Gaussian-weighted
    # formula written out by hand.
    g = torch.Generator().manual_seed(1)
    x = torch.rand(11, 11, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.rand(11, 11, generator=g, dtype=torch.float64)).clamp(0, 1)
    r = np.arange(11) - 5.0
    w1 = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(w1, w1)
    w /= w.sum()
    xn, yn = x.numpy(), y.numpy()
    mx, my = (w * xn).sum(), (w * yn).sum()
    vx = (w * (xn - mx) ** 2).sum()
    vy = (w * (yn - my) ** 2).sum()
    cxy = (w * (xn - mx) * (yn - my)).sum()
    c1, c2 = 0.01**2, 0.03**2
    ref = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert float(soae_psnr.ssim(x, y)) == pytest.approx(ref, rel=1e-10)
    assert float(soae_psnr.ssim(x, y)) == pytest.approx(float(soae_psnr.ssim(y, x)), rel=1e-12)


def test_psnr_known_values() -> None:
    x = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> 20 dB
    y[1, 0, 0, 0] = 1.0  # MSE 1/16 -> 10 log10 16
    p = soae_psnr.psnr(y, x)
    assert float(p[0]) == pytest.approx(20.0, abs=1e-9)
    assert float(p[1]) == pytest.approx(10 * math.log10(16), abs=1e-9)
    assert float(soae_psnr.psnr(y, x, data_range=255.0)[0]) == pytest.approx(
        20.0 + soae_psnr.PSNR_255_OFFSET, abs=1e-9
    )


# ------------------------------------------------------------------ Krylov dimension
def test_m_per_tau_from_history() -> None:
    hist = [np.array([1.0, 0.5, 1e-2, 1e-4, 1e-6]), np.array([2.0, 1.0, 0.9])]
    m = soae_krylov_dim.m_per_tau(hist, [4, 2], (1e-5, 1e-1, 0.6))
    assert m[:, 0].tolist() == [4, 2, 1]
    assert m[:, 1].tolist() == [2, 2, 1]  # 1e-5, 1e-1 never reached: iteration count


def test_exact_krylov_dim_small_float64() -> None:
    net = soae_krylov_dim.model("natural", "cpu")
    x, y = soae_krylov_dim.digits(8, 0, "cpu")
    m = soae_krylov_dim.krylov_dims(
        net, x, y, hvp="exact", dtype=torch.float64, taus=(1e-3,), cap=64, eta=1e-5, batch=8
    )
    assert m.max() <= 10  # rank H <= K - 1 = 9
    # the history read-off equals a direct solve at tau = 1e-3
    from krylovadv.torch.attacks import SOAE

    direct = SOAE(net.double(), eps=0.3, tau=1e-3, max_krylov_dim=64).solve(x.double(), y)
    net.float()
    assert m[0].tolist() == np.asarray(direct.krylov_dim).tolist()


def test_krylov_dim_tiny(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(
        soae_krylov_dim,
        "QUICK",
        {
            "samples": 4,
            "taus": (1e-3, 1e-1),
            "cap": 24,
            "eta": 1e-5,
            "model": "natural",
            "batch": 4,
        },
    )
    result = soae_krylov_dim.run(ReproduceOptions(output=tmp_path))
    _check(result, tmp_path)
    assert "43" in result.table and "17" in result.table
    assert max(max(row) for row in result.data["m"]["exact float64"]) <= 10


# ------------------------------------------------------------------ experiments
def test_psnr_tiny(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(
        soae_psnr,
        "QUICK",
        {"samples": 4, "eps": (0.3,), "pgd_steps": 2, "soae_steps": 2, "model": "natural"},
    )
    result = soae_psnr.run(ReproduceOptions(output=tmp_path))
    _check(result, tmp_path)
    assert "74.23" in result.table and "76.08" in result.table
    for row in result.data["rows"].values():
        assert row["psnr1"] >= -20 * math.log10(0.3) - 1e-9  # l_inf bound
        assert 0 < row["ssim"] <= 1


def test_iters_tiny(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(
        soae_iters,
        "QUICK",
        {"samples": 4, "iterations": (1, 2), "models": ("natural",), "eps": 0.3},
    )
    result = soae_iters.run(ReproduceOptions(output=tmp_path))
    _check(result, tmp_path)
    assert "< 4 iterations" in result.table
    curve = result.data["correct"]["natural"]["PGD"]
    assert len(curve) == 3 and all(0 <= c <= 4 for c in curve)


def test_eta_tiny(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(
        soae_eta,
        "QUICK",
        {"samples": 4, "etas": (1e-2, 1e-5), "steps": 1, "eps": 0.1, "models": ("natural",)},
    )
    threads = torch.get_num_threads()
    result = soae_eta.run(ReproduceOptions(output=tmp_path))
    _check(result, tmp_path)
    assert "η ≤ 1e-5" in result.table
    assert torch.get_num_threads() == threads  # the run leaves the thread setting as it was


def test_no_output_writes_nothing(monkeypatch) -> None:
    monkeypatch.setattr(
        soae_iters,
        "QUICK",
        {"samples": 2, "iterations": (1,), "models": ("natural",), "eps": 0.3},
    )
    result = soae_iters.run(ReproduceOptions(output=None))
    assert result.figures == []
