"""APGD-DLR, APGD-T, Square and the cascade: against torchattacks, and their invariants.

The comparison uses the zoo's small ``pgd-linf`` CNN (robust at ℓ∞ 0.3, so the
attacks leave an informative fraction of the digits correct) on the first
digits of the tuning part, with the same budget and seed for both libraries.
"Ours at least as strong within the 95 % interval": the Newcombe interval of
(our accuracy - theirs) must not lie entirely above zero.
"""

from __future__ import annotations

import pytest
import torch
import torchattacks
from attack_fixtures import one_cpu_thread
from hypothesis import given, settings
from hypothesis import strategies as st

from krylovadv.data import load_mnist10k
from krylovadv.torch.attacks import APGD, APGDT, Cascade, Square, first_order_cascade
from krylovadv.torch.attacks.apgd import dlr_loss, dlr_targeted_loss
from krylovadv.torch.attacks.square import p_schedule
from krylovadv.torch.intervals import difference_interval
from krylovadv.torch.pretrained import load_pretrained

N_DIGITS = 100
EPS = 0.3


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


@pytest.fixture(scope="module")
def setting():
    model = load_pretrained("pgd-linf")
    data = load_mnist10k("tuning").subset(N_DIGITS)
    return model, torch.as_tensor(data.images), torch.as_tensor(data.labels)


def correct(model, x_adv, y) -> int:
    with torch.no_grad():
        return int((model(x_adv).argmax(1) == y).sum())


def assert_at_least_as_strong(model, ours, theirs, x, y) -> None:
    assert (ours - x).abs().max() <= EPS + 1e-6
    assert ours.min() >= 0 and ours.max() <= 1
    a, b = correct(model, ours, y), correct(model, theirs, y)
    _, low, _ = difference_interval(a, N_DIGITS, b, N_DIGITS)
    assert low <= 0, f"ours leaves {a}/{N_DIGITS} correct, torchattacks {b}/{N_DIGITS}"
    # The comparison is informative: the attacks break some digits but not all.
    assert 0 < b < correct(model, x, y)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_vs_torchattacks(setting, loss):
    model, x, y = setting
    ours = APGD(model, eps=EPS, steps=10, loss=loss, seed=0)(x, y)
    theirs = torchattacks.APGD(model, eps=EPS, steps=10, loss=loss, seed=0)(x, y)
    assert_at_least_as_strong(model, ours, theirs, x, y)


def test_apgdt_vs_torchattacks(setting):
    model, x, y = setting
    ours = APGDT(model, eps=EPS, steps=10, n_target_classes=3, seed=0)(x, y)
    # torchattacks targets the top n_classes - 1 wrong classes.
    theirs = torchattacks.APGDT(model, eps=EPS, steps=10, n_classes=4, seed=0)(x, y)
    assert_at_least_as_strong(model, ours, theirs, x, y)


def test_square_vs_torchattacks(setting):
    model, x, y = setting
    x, y = x[:50], y[:50]
    ours = Square(model, eps=EPS, queries=100, seed=0)(x, y)
    theirs = torchattacks.Square(model, eps=EPS, n_queries=100, seed=0)(x, y)
    assert (ours - x).abs().max() <= EPS + 1e-6
    a, b = correct(model, ours, y), correct(model, theirs, y)
    _, low, _ = difference_interval(a, 50, b, 50)
    assert low <= 0 and b < correct(model, x, y)


def test_cascade_is_the_per_sample_worst_case(setting):
    model, x, y = setting
    x, y = x[:40], y[:40]
    attacks = [APGD(model, eps=EPS, steps=5, seed=0), APGD(model, eps=EPS, steps=5, loss="dlr")]
    cascade = Cascade(model, attacks)
    x_adv = cascade(x, y)
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    with torch.no_grad():
        fooled = [model(a(x, y)).argmax(1) != y for a in attacks]
        cascade_fooled = model(x_adv).argmax(1) != y
    # The cascade breaks at least what the first attack breaks (same seed, run on
    # all samples), and every sample it reports broken is broken.
    assert bool((cascade_fooled >= fooled[0]).all())
    broken = torch.as_tensor(cascade.broken_by >= 0)
    assert bool((cascade_fooled == broken | torch.as_tensor(cascade.broken_by == -2)).all())


class _Spy:
    """An 'attack' that records the batch sizes it is called with and breaks nothing."""

    def __init__(self, eps: float) -> None:
        self.eps, self.norm, self.sizes = eps, "linf", []

    def __call__(self, x, y):
        self.sizes.append(int(x.shape[0]))
        return x.clone()


def test_cascade_runs_each_attack_only_on_still_robust_samples():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    torch.manual_seed(0)
    x = torch.rand(12, 1, 2, 2)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 3  # three clean errors
    first, second = _Spy(0.1), _Spy(0.1)
    Cascade(model, [first, second])(x, y)
    assert first.sizes == [9] and second.sizes == [9]
    with pytest.raises(ValueError, match="same norm and eps"):
        Cascade(model, [_Spy(0.1), _Spy(0.2)])


def test_first_order_cascade_members():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10)).eval()
    names = [type(a).__name__ for a in first_order_cascade(model, eps=0.1, steps=5).attacks]
    assert names == ["APGD", "APGDT", "Square"]
    l2 = first_order_cascade(model, norm="l2", eps=1.0, steps=5).attacks
    assert [type(a).__name__ for a in l2] == ["APGD", "APGDT", "Square"]
    assert all(a.norm.name == "l2" for a in l2)
    no_square = first_order_cascade(model, norm="l2", eps=1.0, steps=5, square_queries=0)
    assert [type(a).__name__ for a in no_square.attacks] == ["APGD", "APGDT"]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=10, max_size=10),
    st.floats(0.1, 10),
    st.floats(-10, 10),
    st.integers(0, 9),
)
def test_dlr_is_shift_and_scale_invariant(z, scale, shift, label):
    logits = torch.tensor([z], dtype=torch.float64)
    y = torch.tensor([label])
    base = dlr_loss(logits, y)
    assert torch.allclose(dlr_loss(scale * logits + shift, y), base, atol=1e-6)
    # DLR > 0 exactly when some other class beats the label.
    others = torch.cat([logits[0, :label], logits[0, label + 1 :]])
    if bool(others.max() > logits[0, label]):
        assert float(base) > 0
    t = torch.tensor([(label + 1) % 10])
    assert torch.allclose(
        dlr_targeted_loss(scale * logits + shift, y, t), dlr_targeted_loss(logits, y, t), atol=1e-6
    )


def test_dlr_needs_enough_classes():
    with pytest.raises(ValueError, match="K >= 3"):
        dlr_loss(torch.zeros(2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="K >= 4"):
        dlr_targeted_loss(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([1, 2]))


def test_apgdt_batch_equals_loop_without_random_start():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6)).double().eval()
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4])
    attack = APGDT(model, eps=0.05, steps=6, n_target_classes=3, random_start=False)
    batch = attack(x, y)
    loop = torch.cat([attack(x[i : i + 1], y[i : i + 1]) for i in range(5)])
    assert torch.allclose(batch, loop, atol=1e-12)
    with pytest.raises(ValueError, match="n_target_classes"):
        APGDT(model, eps=0.05, steps=2, n_target_classes=6)(x, y)


def test_square_seeds_ball_and_bad_arguments():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)).eval()
    x = torch.rand(6, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    a = Square(model, eps=0.05, queries=30, seed=3)(x, y)
    b = Square(model, eps=0.05, queries=30, seed=3)(x, y)
    c = Square(model, eps=0.05, queries=30, seed=4)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().max() <= 0.05 + 1e-7 and a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="norm"):
        Square(model, norm="l1", eps=1.0)
    with pytest.raises(ValueError, match="p_init"):
        Square(model, eps=0.1, p_init=0.0)
    with pytest.raises(ValueError, match=r"x must be images of shape \(B, C, H, W\)"):
        Square(torch.nn.Linear(64, 4), norm="l2", eps=1.0)(x.flatten(1), y)


def test_p_schedule_breakpoints():
    assert p_schedule(0.8, 0, 10000) == 0.8
    assert p_schedule(0.8, 11, 10000) == 0.4
    assert p_schedule(0.8, 50, 10000) == 0.4
    assert p_schedule(0.8, 51, 10000) == 0.2
    assert p_schedule(0.8, 9000, 10000) == pytest.approx(0.8 / 512)
    # Rescaled to the budget: query 100 of 1000 is query 1000 of 10,000.
    assert p_schedule(0.8, 100, 1000) == pytest.approx(0.8 / 16)
