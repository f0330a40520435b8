"""APGD (Croce & Hein 2020): invariants, schedule, reproducibility and strength vs PGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from attack_fixtures import one_cpu_thread, test_digits, tiny_model, trained_cnn
from hypothesis import given, settings
from hypothesis import strategies as st

from krylovadv.torch.attacks import APGD, PGD, get_norm
from krylovadv.torch.attacks.apgd import checkpoints
from krylovadv.torch.evaluate import evaluate


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


def _schedule(n: int) -> list[int]:
    """The paper's formula, evaluated independently (in hundredths, exactly)."""
    p_prev, p, out = 0, 22, [0]
    while p <= 100:
        w = -(-p * n // 100)  # ceil(p * n / 100)
        if w > out[-1]:
            out.append(w)
        p_prev, p = p, p + max(p - p_prev - 3, 6)
    return out


def test_checkpoints() -> None:
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(20) == [0, 5, 9, 12, 14, 16, 18, 19, 20]
    for n in (1, 5, 10, 37, 100, 1000):
        assert checkpoints(n) == _schedule(n)


@settings(max_examples=6, deadline=None)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(0.0, 2.0),
    steps=st.integers(1, 6),
    seed=st.integers(0, 100),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_ball_and_box(norm: str, eps: float, steps: int, seed: int, dtype: torch.dtype) -> None:
    model = tiny_model(dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 1, 6, 6, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (4,), generator=g)
    x_adv = APGD(model, norm=norm, eps=eps, steps=steps, seed=seed)(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert bool(torch.isfinite(x_adv).all())
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    dist = float(get_norm(norm).distance(x_adv, x).max())
    assert dist <= eps + 1e-6 * eps + 4 * torch.finfo(dtype).eps


def test_mode_restored_no_param_grad_and_seeded() -> None:
    model = tiny_model()
    model.train()
    model[0].eval()  # mixed modes must come back as they were
    modes = [m.training for m in model.modules()]
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    y = torch.arange(5)
    atk = APGD(model, eps=0.1, steps=8, seed=3)
    a, b = atk(x, y), atk(x, y)
    assert torch.equal(a, b)
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())
    other = APGD(model, eps=0.1, steps=8, seed=4)(x, y)
    assert not torch.equal(a, other)
    result = atk.run(x, y)
    assert torch.equal(result.x_adv, a)
    assert len(result.trace) == 9
    assert result.diagnostics["step_size"].shape == (8, 5)
    assert float(result.diagnostics["step_size"][0, 0]) == pytest.approx(0.2)


def test_step_halving_and_restarts() -> None:
    model, (x, y) = trained_cnn(), test_digits(16)
    result = APGD(model, eps=0.1, steps=20, restarts=2, seed=0).run(x, y)
    eta = result.diagnostics["step_size"]
    ratios = eta[1:] / eta[:-1]
    assert set(np.unique(ratios[~np.isnan(ratios)].round(6))) <= {0.5, 1.0}
    # step changes only right after a checkpoint
    changed = (ratios != 1.0).any(axis=1).nonzero()[0] + 1
    assert set(changed) <= {w + 1 for w in checkpoints(20)}
    assert result.diagnostics["restarted"].sum() > 0
    assert result.loss.shape == (16,)


def test_stronger_than_pgd_and_evaluate() -> None:
    model, (x, y) = trained_cnn(), test_digits(100)
    for eps in (0.08, 0.1):
        robust = {}
        for name, atk in {
            "APGD": APGD(model, eps=eps, steps=20),
            "PGD": PGD(model, eps=eps, steps=20),
        }.items():
            robust[name] = int((model(atk(x, y)).argmax(1) == y).sum())
        assert 0 < robust["PGD"], robust
        assert robust["APGD"] <= robust["PGD"] + 1, (eps, robust)
    report = evaluate(model, (x[:20], y[:20]), {"APGD": APGD(model, eps=0.1, steps=5)})
    assert all(rec.invalid == 0 for rec in report.attacks)


def test_early_stop_and_validation() -> None:
    model, (x, y) = trained_cnn(), test_digits(10)
    res = APGD(model, eps=0.2, steps=10, early_stop=True).run(x, y)
    full = APGD(model, eps=0.2, steps=10).run(x, y)
    # Robust accuracy recomputed independently from the model's predictions at x_adv.
    still_correct = (model(res.x_adv).argmax(1) == y).float().mean().item()
    assert res.robust_accuracy == pytest.approx(still_correct) and bool(res.success.any())
    assert full.success.sum() >= 1
    with pytest.raises(ValueError):
        APGD(model, eps=0.1, rho=1.5)
    with pytest.raises(ValueError):
        APGD(model, eps=-0.1)
