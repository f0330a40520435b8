"""Square ℓ2 (Andriushchenko et al., ECCV 2020): against torchattacks, and its invariants.

The comparison and the "natural model is broken" check share one run of ours on
the zoo's undefended ``natural`` CNN at ℓ2 ε = 2.0 (the first digits of the
tuning part; the same budget and seed for torchattacks).  The invariants are
properties on a small seeded CNN, with images whose pixels sit on the box
faces so that clipping to [0, 1] is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchattacks
from attack_fixtures import one_cpu_thread
from hypothesis import given, settings
from hypothesis import strategies as st

from krylovadv.data import load_mnist10k
from krylovadv.torch.attacks import Square
from krylovadv.torch.attacks.square import l2_pattern
from krylovadv.torch.intervals import difference_interval
from krylovadv.torch.pretrained import load_pretrained

N_DIGITS = 40
EPS = 2.0
QUERIES = 300


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


def correct(model, x_adv, y) -> int:
    with torch.no_grad():
        return int((model(x_adv).argmax(1) == y).sum())


@pytest.fixture(scope="module")
def natural_run():
    model = load_pretrained("natural")
    data = load_mnist10k("tuning").subset(N_DIGITS)
    x, y = torch.as_tensor(data.images), torch.as_tensor(data.labels)
    ours = Square(model, norm="l2", eps=EPS, queries=QUERIES, seed=0)(x, y)
    return model, x, y, ours


def l2_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm((a - b).flatten(1), dim=1)


def test_square_l2_vs_torchattacks(natural_run):
    model, x, y, ours = natural_run
    theirs = torchattacks.Square(model, norm="L2", eps=EPS, n_queries=QUERIES, seed=0)(x, y)
    a, b = correct(model, ours, y), correct(model, theirs, y)
    # Ours at least as strong within the interval: (ours - theirs) not entirely above 0.
    _, low, _ = difference_interval(a, N_DIGITS, b, N_DIGITS)
    assert low <= 0, f"ours leaves {a}/{N_DIGITS} correct, torchattacks {b}/{N_DIGITS}"
    # Informative: torchattacks breaks some digits but not all.
    assert 0 < b < correct(model, x, y)


def test_square_l2_breaks_a_natural_model(natural_run):
    model, x, y, ours = natural_run
    assert bool((l2_dist(ours, x) <= EPS * (1 + 1e-5)).all())
    assert ours.min() >= 0 and ours.max() <= 1
    clean, robust = correct(model, x, y), correct(model, ours, y)
    # Well below clean accuracy: the whole 95 % interval of (robust - clean) is
    # more than 10 points below zero.
    _, _, high = difference_interval(robust, N_DIGITS, clean, N_DIGITS)
    assert high < -0.10, f"clean {clean}/{N_DIGITS}, under Square l2 {robust}/{N_DIGITS}"


def small_model(classes: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, classes),
    ).eval()


def box_images(seed: int, batch: int, size: int = 8) -> torch.Tensor:
    """Images with about a third of the pixels at 0 and a third at 1 (clipping bites)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, size, size, generator=g)
    return torch.where(x < 1 / 3, 0.0, torch.where(x > 2 / 3, 1.0, x))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), eps=st.floats(0.05, 6.0), p_init=st.floats(0.05, 1.0))
def test_l2_ball_and_box(seed, eps, p_init):
    model = small_model()
    x = box_images(seed, 6)
    y = torch.arange(6) % 5
    x_adv = Square(model, norm="l2", eps=eps, queries=15, p_init=p_init, seed=seed)(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert bool((l2_dist(x_adv, x) <= eps * (1 + 1e-5)).all())
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), eps=st.floats(0.01, 0.25))
def test_l2_update_spends_exactly_the_budget_without_clipping(seed, eps):
    # Interior images and eps <= 0.25 <= every pixel's distance to the box: no
    # clipping, so the initialisation and every accepted two-window move have
    # ||delta||_2 = eps exactly (mass is moved, never lost or created).
    model = small_model().double()
    g = torch.Generator().manual_seed(seed)
    x = 0.25 + 0.5 * torch.rand(6, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.arange(6) % 5
    result = Square(model, norm="l2", eps=eps, queries=20, seed=seed).run(x, y, trace=False)
    queried = ~np.isnan(result.diagnostics["improved"][0])
    assert queried.any()  # some sample was attacked (else the law is vacuous)
    dist = l2_dist(result.x_adv, x).numpy()
    np.testing.assert_allclose(dist[queried], eps, rtol=1e-9)


def test_l2_seed_reproducibility():
    model = small_model()
    x, y = box_images(1, 6), torch.arange(6) % 5
    a = Square(model, norm="l2", eps=1.0, queries=30, seed=3)(x, y)
    b = Square(model, norm="l2", eps=1.0, queries=30, seed=3)(x, y)
    c = Square(model, norm="l2", eps=1.0, queries=30, seed=4)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


class _Counting(torch.nn.Module):
    """Wrap a model and count the rows (samples) it is queried on."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.rows = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        return self.inner(x)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_only_correct_samples_are_queried(norm):
    inner = small_model()
    x = box_images(5, 8)
    with torch.no_grad():
        pred = inner(x).argmax(1)
    wrong = torch.tensor([True, False, True, False, False, True, False, False])
    y = torch.where(wrong, (pred + 1) % 5, pred)
    model = _Counting(inner).eval()
    eps = 1.0 if norm == "l2" else 0.1
    result = Square(model, norm=norm, eps=eps, queries=25, seed=0).run(x, y, trace=False)
    improved = result.diagnostics["improved"]
    assert improved.shape == (25, 8)
    queried = ~np.isnan(improved)
    # Clean errors: never queried after the clean point, returned unchanged.
    assert not queried[:, wrong.numpy()].any()
    assert torch.equal(result.x_adv[wrong], x[wrong])
    # A sample's queries are a prefix of the budget: once misclassified it stops
    # for good (accepted moves only lower the margin), and a stop follows an
    # accepted move or the initialisation.
    for j in range(8):
        n = int(queried[:, j].sum())
        assert queried[:n, j].all() and not queried[n:, j].any()
        if 0 < n < 25:
            assert improved[n - 1, j] == 1.0 and bool(result.success[j])
    # Exact query accounting: B clean points, the initialisation of the correct
    # samples, one row per recorded query, and run()'s final evaluation of B rows.
    assert model.rows == 8 + int((~wrong).sum()) + int(queried.sum()) + 8
    # The correct samples were attacked: at least one query was accepted.
    assert np.nansum(improved) > 0


def test_all_misclassified_batch_costs_one_query():
    inner = small_model()
    x = box_images(7, 4)
    with torch.no_grad():
        y = (inner(x).argmax(1) + 1) % 5
    model = _Counting(inner).eval()
    x_adv = Square(model, norm="l2", eps=1.0, queries=50, seed=0)(x, y)
    assert model.rows == 4 and torch.equal(x_adv, x)


@pytest.mark.parametrize("side", [1, 2, 3, 4, 5, 8, 25])
def test_l2_pattern_shape_norm_and_halves(side):
    eta = l2_pattern(side, torch.Generator().manual_seed(side), dtype=torch.float64)
    assert eta.shape == (side, side)
    assert float(torch.linalg.vector_norm(eta)) == pytest.approx(1.0, rel=1e-12)
    # One half positive, the other negative, along rows or (transposed) columns.
    half = side // 2
    rows_split = bool((eta[:half] > 0).all() and (eta[half:] < 0).all())
    cols_split = bool((eta[:, :half] > 0).all() and (eta[:, half:] < 0).all())
    assert rows_split or cols_split
    with pytest.raises(ValueError, match="side"):
        l2_pattern(0, torch.Generator())


def test_masking_flag_a_uses_square_l2():
    from krylovadv.torch.masking import diagnose

    model = small_model()
    x, y = box_images(9, 6), torch.arange(6) % 5
    report = diagnose(
        model, x, y, norm="l2", eps=1.0, steps=2, long_steps=3, square_queries=5, batch_size=6
    )
    flags = {f.name: f for f in report.flags}
    # Without Square l2 there is no black-box attack at l2 and no flag (a) at all.
    assert "Square 5" in flags["a"].numbers, flags["a"].detail
    assert 0 <= flags["a"].numbers["Square 5"]["correct"] <= 6
