"""Laws every attack of krylovadv.torch.attacks obeys, whatever its direction.

The ε-ball and box invariants, batch consistency of deterministic attacks,
reproducibility, model-mode restoration, untouched parameter gradients, input
validation, the trace, restarts and early stop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from attack_fixtures import ATTACK_KINDS, make_attack, one_cpu_thread, random_images, tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from krylovadv.torch.attacks import (
    DEFAULT_SEED,
    FGSM,
    PGD,
    SO,
    SOAE,
    AttackResult,
    L2Norm,
    LinfNorm,
    SOPower,
    get_norm,
)

NORMS = ("linf", "l2")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


def labels(batch: int, num_classes: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, num_classes, (batch,), generator=torch.Generator().manual_seed(seed))


def assert_in_ball(x_adv: torch.Tensor, x: torch.Tensor, norm: str, eps: float) -> None:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert bool(torch.isfinite(x_adv).all())
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    distance = get_norm(norm).distance(x_adv, x)
    slack = 1e-6 * eps + 4 * torch.finfo(x.dtype).eps  # rounding of x + delta
    assert float(distance.max()) <= eps + slack, (float(distance.max()), eps)


# -- invariants ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(ATTACK_KINDS),
    norm=st.sampled_from(NORMS),
    eps=st.floats(0.0, 2.0),
    batch=st.integers(1, 3),
    channels=st.integers(1, 2),
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    double=st.booleans(),
    random_start=st.booleans(),
)
def test_output_in_ball_and_box(
    kind, norm, eps, batch, channels, height, width, seed, double, random_start
):
    dtype = torch.float64 if double else torch.float32
    model = tiny_model(channels, dtype=dtype, seed=seed % 7)
    x = random_images((batch, channels, height, width), seed=seed, dtype=dtype)
    y = labels(batch, seed=seed)
    kwargs = {} if kind == "fgsm" else {"seed": seed, "random_start": random_start}
    attack = make_attack(kind, model, norm=norm, eps=eps, **kwargs)
    x_adv = attack(x, y)
    assert_in_ball(x_adv, x, norm, eps)


@settings(max_examples=25, deadline=None)
@given(
    norm=st.sampled_from(NORMS),
    eps=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
    shape=st.sampled_from([(2, 1, 3, 3), (3, 7), (1, 2, 2, 2)]),
)
def test_norm_strategies_stay_in_ball_and_box(norm, eps, seed, shape):
    strategy = get_norm(norm)
    x = random_images(shape, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    start = strategy.random_start(x, eps, generator)
    assert_in_ball(start, x, norm, eps)
    far = strategy.step(start, torch.randn(shape, generator=generator), 10.0 * eps + 1.0)
    assert float(far.min()) >= 0.0 and float(far.max()) <= 1.0
    assert_in_ball(strategy.project(far, x, eps), x, norm, eps)


def test_norm_steps_are_steepest_ascent_unit_directions():
    d = torch.tensor([[3.0, -4.0, 0.0, 0.0]])
    x = torch.full((1, 4), 0.5)
    assert torch.allclose(LinfNorm().step(x, d, 0.1), torch.tensor([[0.6, 0.4, 0.5, 0.5]]))
    assert torch.allclose(L2Norm().step(x, d, 0.5), torch.tensor([[0.8, 0.1, 0.5, 0.5]]))
    assert torch.equal(L2Norm().step(x, torch.zeros_like(x), 0.5), x)  # zero direction: stay
    projected = L2Norm().project(x + 0.1 * d, x, 0.25)  # ||0.1 d|| = 0.5 > 0.25
    assert float(L2Norm().distance(projected, x)) == pytest.approx(0.25)
    assert torch.allclose(projected - x, 0.05 * d)


@pytest.mark.parametrize("name", ["LINF", "l2", "L2"])
def test_get_norm_accepts_names_and_instances(name):
    assert get_norm(name).name == name.lower()
    strategy = LinfNorm()
    assert get_norm(strategy) is strategy


# -- determinism -----------------------------------------------------------------------------


def deterministic_attacks(model):
    return [
        FGSM(model, eps=0.1),
        FGSM(model, eps=0.5, norm="l2"),
        PGD(model, eps=0.1, steps=4, random_start=False),
        PGD(model, eps=0.5, norm="l2", steps=4, random_start=False, loss="cw"),
        SOPower(model, eps=0.1, steps=3, power_iters=4, start="gradient"),
        SOAE(model, eps=0.1, steps=3),
        SOAE(model, eps=0.5, norm="l2", steps=3, shift=0.1),
    ]


def test_deterministic_attacks_treat_samples_independently():
    """attack(batch)[i] == attack(batch[i:i+1]) (advertorch's batch-consistency test)."""
    model = tiny_model(1, dtype=torch.float64)
    x = random_images((4, 1, 5, 5), seed=3, dtype=torch.float64)
    y = labels(4, seed=3)
    for attack in deterministic_attacks(model):
        assert attack.deterministic, attack
        batched = attack(x, y)
        for i in range(4):
            alone = attack(x[i : i + 1], y[i : i + 1])
            torch.testing.assert_close(
                batched[i : i + 1], alone, atol=1e-12, rtol=0, msg=f"{attack!r}, sample {i}"
            )


@pytest.mark.parametrize("kind", ["pgd", "so", "sopower"])
def test_random_attacks_are_reproducible_from_their_seed(kind):
    model = tiny_model(1)
    x, y = random_images((3, 1, 4, 4), seed=1), labels(3, seed=1)
    extra = {"random_start": True} if kind == "pgd" else {}
    first = make_attack(kind, model, eps=0.2, seed=5, **extra)
    assert not first.deterministic
    again = make_attack(kind, model, eps=0.2, seed=5, **extra)
    other = make_attack(kind, model, eps=0.2, seed=6, **extra)
    out = first(x, y)
    assert torch.equal(out, first(x, y))  # every call starts from the seed
    assert torch.equal(out, again(x, y))
    assert not torch.equal(out, other(x, y))
    assert make_attack(kind, model, eps=0.2, **extra).seed == DEFAULT_SEED


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_call_equals_run_with_or_without_trace(kind):
    model = tiny_model(1)
    x, y = random_images((3, 1, 4, 4), seed=2), labels(3, seed=2)
    attack = make_attack(kind, model, eps=0.2)
    x_adv = attack(x, y)
    assert torch.equal(x_adv, attack.run(x, y).x_adv)
    assert torch.equal(x_adv, attack.run(x, y, trace=False).x_adv)


# -- the model is left as it was -----------------------------------------------------------


def bn_dropout_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(48, 10),
    )


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_model_modes_restored_and_no_parameter_gradients(kind):
    model = bn_dropout_model()
    x, y = random_images((4, 1, 4, 4), seed=0), labels(4)
    running_mean = model[1].running_mean.clone()
    for training in (True, False):
        model.train(training)
        model[3].train(not training)  # a mixed configuration must come back exactly
        before = [m.training for m in model.modules()]
        x_adv = make_attack(kind, model, eps=0.1)(x, y)
        assert [m.training for m in model.modules()] == before
        assert all(p.grad is None for p in model.parameters())
        assert torch.equal(model[1].running_mean, running_mean)  # BatchNorm ran in eval mode
        model.eval()
        expected = make_attack(kind, model, eps=0.1)(x, y)
        assert torch.equal(x_adv, expected)  # dropout was off during the attack


def test_model_mode_restored_when_the_model_raises():
    class Fragile(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(16, 10)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 2:
                raise RuntimeError("boom")
            return self.linear(x.flatten(1))

    model = Fragile().train()
    with pytest.raises(RuntimeError, match="boom"):
        PGD(model, eps=0.1, steps=5)(random_images((2, 1, 4, 4)), labels(2))
    assert model.training and model.linear.training


def test_attack_works_inside_no_grad():
    model = tiny_model(1)
    x, y = random_images((2, 1, 4, 4)), labels(2)
    expected = PGD(model, eps=0.1, steps=2)(x, y)
    with torch.no_grad():
        assert torch.equal(PGD(model, eps=0.1, steps=2)(x, y), expected)


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda m: PGD(m, eps=-0.1), "eps"),
        (lambda m: PGD(m, eps=float("nan")), "eps"),
        (lambda m: PGD(m, eps=float("inf")), "eps"),
        (lambda m: PGD(m, eps=0.1, steps=0), "steps"),
        (lambda m: PGD(m, eps=0.1, alpha=-1.0), "alpha"),
        (lambda m: PGD(m, eps=0.1, norm="l1"), "norm"),
        (lambda m: PGD(m, eps=0.1, loss="hinge"), "loss"),
        (lambda m: PGD(m, eps=0.1, restarts=0), "restarts"),
        (lambda m: PGD(m, eps=0.1, seed=-1), "seed"),
        (lambda m: SO(m, eps=0.1, norm="l1"), "norm"),
        (lambda m: SO(m, eps=0.1, samples=0), "samples"),
        (lambda m: SO(m, eps=0.1, sigma=-1.0), "sigma"),
        (lambda m: SOPower(m, eps=0.1, start="zeros"), "start"),
        (lambda m: SOAE(m, eps=0.1, tau=0.0), "tau"),
        (lambda m: SOAE(m, eps=0.1, max_krylov_dim=0), "max_krylov_dim"),
        (lambda m: SOAE(m, eps=0.1, shift=-1.0), "shift"),
        (lambda m: SOAE(m, eps=0.1, hvp="autograd"), "hvp"),
        (lambda m: SOAE(m, eps=0.1, eta=1e-5), "eta"),
        (lambda m: SOAE(m, eps=0.1, step_mode="sign"), "step_mode"),
        (lambda m: SOAE(m, eps=0.1, fallback="skip"), "fallback"),
    ],
)
def test_bad_settings_raise_value_error_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make(tiny_model(1))


def test_unknown_norm_message_lists_the_choices():
    with pytest.raises(ValueError, match=r"\['l2', 'linf'\]"):
        PGD(tiny_model(1), eps=0.1, norm="l1")


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_bad_inputs_raise_value_error_naming_the_argument(kind):
    attack = make_attack(kind, tiny_model(1), eps=0.1)
    x, y = random_images((2, 1, 4, 4)), labels(2)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        attack(x + 1.0, y)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        attack(x - 0.5, y)
    bad = x.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        attack(bad, y)
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        attack(x, y[:1])
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        attack(x, y[:, None])


def test_wrong_dtype_is_reported_before_the_model_runs():
    with pytest.raises(TypeError, match=r"x has dtype torch\.float64"):
        PGD(tiny_model(1), eps=0.1)(random_images((2, 1, 4, 4), dtype=torch.float64), labels(2))


# -- trace, restarts, early stop ------------------------------------------------------------


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_trace_has_one_row_per_iterate_and_matches_the_result(kind):
    model = tiny_model(1)
    x, y = random_images((3, 1, 4, 4), seed=4), labels(3, seed=4)
    attack = make_attack(
        kind, model, eps=0.2, **({} if kind == "fgsm" else {"random_start": False})
    )
    result = attack.run(x, y)
    assert isinstance(result, AttackResult)
    trace = result.trace
    assert len(trace) == attack.steps + 1
    for array in (trace.loss, trace.grad_norm, trace.success):
        assert array.shape == (attack.steps + 1, 3)
        assert np.all(np.isfinite(array.astype(float)))
    assert trace.mean_loss.shape == trace.mean_grad_norm.shape == (attack.steps + 1,)
    assert trace.success.dtype == bool and trace.success_rate.shape == (attack.steps + 1,)
    # Row 0 is the clean point, the last row the returned point.
    logits, loss0, grad0 = attack.loss_and_gradient(x, y)
    np.testing.assert_allclose(trace.loss[0], loss0.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        trace.grad_norm[0], grad0.flatten(1).norm(dim=1).numpy(), rtol=1e-4, atol=1e-7
    )
    np.testing.assert_array_equal(trace.success[0], (logits.argmax(1) != y).numpy())
    np.testing.assert_allclose(trace.loss[-1], result.loss.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(trace.success[-1], result.success.numpy())
    final_logits = model(result.x_adv)
    np.testing.assert_array_equal(result.success.numpy(), (final_logits.argmax(1) != y).numpy())
    assert result.robust_accuracy == pytest.approx(1 - result.success.float().mean().item())
    assert attack.run(x, y, trace=False).trace is None


@pytest.mark.parametrize("kind", ["pgd", "so"])
def test_restarts_keep_each_samples_worst_case(kind):
    model = tiny_model(1, seed=3)
    x, y = random_images((6, 1, 4, 4), seed=7), labels(6, seed=7)
    extra = {"random_start": True, "seed": 11}
    single = make_attack(kind, model, eps=0.3, **extra).run(x, y)
    multi = make_attack(kind, model, eps=0.3, restarts=4, **extra).run(x, y)
    assert set(multi.restart.tolist()) <= {0, 1, 2, 3}
    # Restart 0 is the single run; a later one replaces it only if it is worse for the model.
    better_or_equal = (multi.success & ~single.success) | (
        (multi.success == single.success) & (multi.loss >= single.loss)
    )
    assert bool(better_or_equal.all())
    assert bool((multi.success >= single.success).all())
    kept_first = torch.as_tensor(multi.restart == 0)
    assert torch.equal(multi.x_adv[kept_first], single.x_adv[kept_first])
    # The kept sample's record is the one of its restart.
    np.testing.assert_allclose(multi.trace.loss[-1], multi.loss.numpy(), rtol=1e-6)


def test_early_stop_freezes_misclassified_samples():
    model = tiny_model(1, seed=1)
    x, y = random_images((8, 1, 4, 4), seed=5), labels(8, seed=5)
    clean_wrong = model(x).argmax(1) != y
    assert bool(clean_wrong.any()) and bool((~clean_wrong).any())
    result = SOAE(model, eps=0.3, steps=4, early_stop=True).run(x, y)
    # Already misclassified samples are never moved and never cost a solve.
    assert torch.equal(result.x_adv[clean_wrong], x[clean_wrong])
    assert np.all(np.isnan(result.diagnostics["krylov_dim"][:, clean_wrong.numpy()]))
    # Once misclassified, a sample stays where it was: its trace rows repeat.
    succ = result.trace.success
    for i in range(8):
        if succ[:, i].any():
            first = int(np.argmax(succ[:, i]))
            assert np.all(result.trace.loss[first:, i] == result.trace.loss[first, i])
    # Same trajectory until the first success, then frozen: never less successful.
    plain = SOAE(model, eps=0.3, steps=4).run(x, y)
    assert bool((result.success | ~plain.success).all())


def test_early_stop_with_restarts_only_attacks_robust_samples():
    model = tiny_model(1, seed=2)
    x, y = random_images((6, 1, 4, 4), seed=9), labels(6, seed=9)
    result = PGD(model, eps=0.2, steps=3, restarts=3, early_stop=True).run(x, y)
    wrong = model(result.x_adv).argmax(1) != y
    assert torch.equal(result.success, wrong)
    assert_in_ball(result.x_adv, x, "linf", 0.2)
