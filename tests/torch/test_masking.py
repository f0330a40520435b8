"""Gradient-masking flags: planted numbers, and real models with and without masking."""

from __future__ import annotations

import pytest
import torch
from attack_fixtures import one_cpu_thread

from krylovadv.data import load_mnist10k
from krylovadv.torch.masking import (
    LARGE_RADIUS_FLOOR,
    diagnose,
    flag_black_box,
    flag_large_radius,
    flag_unconverged,
)
from krylovadv.torch.pretrained import load_pretrained


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


# 250/500 against 219/500 is the smallest significant gap; 220/500 is a tie (Newcombe).
def test_black_box_flag_boundary() -> None:
    assert flag_black_box(500, {"PGD": 250, "APGD": 260}, {"Square": 219}).flagged
    assert not flag_black_box(500, {"PGD": 250, "APGD": 260}, {"Square": 220}).flagged
    # the best white-box attack is the reference, whichever is listed first
    assert not flag_black_box(500, {"APGD": 260, "PGD": 220}, {"Square": 219}).flagged
    flag = flag_black_box(500, {"PGD": 250}, {"Square": 219, "S-O": 240})
    assert flag.numbers["best_white_box"] == "PGD" and "Square +6.2" in flag.detail
    with pytest.raises(ValueError, match="white-box"):
        flag_black_box(500, {}, {"Square": 1})


def test_large_radius_flag_boundary() -> None:
    # Wilson lower bound of 6/100 is 2.78 % > 2 %; of 5/100 it is 2.15 %; of 4/100, 1.57 %.
    assert flag_large_radius(6, 100, 0.5, "linf").flagged
    assert flag_large_radius(5, 100, 0.5, "linf").flagged
    assert not flag_large_radius(4, 100, 0.5, "linf").flagged
    assert not flag_large_radius(0, 100, 0.5, "linf").flagged
    assert LARGE_RADIUS_FLOOR == pytest.approx(0.02)


def test_unconverged_flag_boundary() -> None:
    assert flag_unconverged(250, 219, 500, short="A", long="B").flagged
    assert not flag_unconverged(250, 220, 500, short="A", long="B").flagged
    # a longer attack that is *weaker* (stochastic) is not a flag either
    assert not flag_unconverged(219, 250, 500, short="A", long="B").flagged


class _Quantized(torch.nn.Module):
    """Rounds the input to 4 grey levels first: the gradient is zero almost everywhere."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 3) / 3)


@pytest.fixture(scope="module")
def digits():
    data = load_mnist10k("tuning").subset(40)
    return torch.as_tensor(data.images), torch.as_tensor(data.labels)


def test_real_masked_model_is_flagged(digits) -> None:
    # Gradient attacks see zero gradients (APGD cannot move); Square, which needs no
    # gradient, breaks the quantised natural model: flags (a) and (b).
    model = _Quantized(load_pretrained("natural")).eval()
    report = diagnose(model, *digits, eps=0.3, steps=5, long_steps=10, square_queries=100)
    flags = {f.name: f for f in report.flags}
    assert flags["a"].flagged, flags["a"].detail
    assert flags["b"].flagged, flags["b"].detail
    assert report.any and "FLAG" in report.summary()


def test_real_unmasked_model_is_not_flagged(digits) -> None:
    model = load_pretrained("natural")
    report = diagnose(model, *digits, eps=0.3, steps=5, long_steps=10, square_queries=100)
    flags = {f.name: f for f in report.flags}
    assert not flags["a"].flagged and not flags["b"].flagged, report.summary()
    assert flags["b"].numbers["correct"] == 0
    assert report.to_dict()["total"] == 40


def test_evaluate_masking_hook(digits) -> None:
    from krylovadv.torch.attacks import PGD
    from krylovadv.torch.evaluate import evaluate

    model = load_pretrained("natural")
    x, y = digits[0][:20], digits[1][:20]
    options = {"steps": 3, "long_steps": 5, "square_queries": 20}
    report = evaluate(
        model, (x, y), {"PGD": PGD(model, eps=0.3, steps=3)}, cascade=False, masking=options
    )
    masking = report.meta["masking"]
    assert [f["name"] for f in masking["flags"]] == ["a", "b", "c"]
    assert "PGD" in masking["summary"] and masking["total"] == 20
    assert "masking" not in evaluate(model, (x, y), [PGD(model, eps=0.3, steps=1)]).meta
