"""The torch attacks' shared machinery: threat models, the cascade and the Attack loop.

Kills the mutants of ``krylovadv/torch/attacks/norms.py``, ``cascade.py`` and ``base.py``
that the behavioural tests let survive (``python tools/run_mutation.py
torch/attacks/norms``, ``torch/attacks/cascade``, ``torch/attacks/base``; equivalent ones
listed in docs/dev/mutation-reports/torch-attack-base.md).

References are independent of the code under test: the closed-form projections
(:math:`\\ell_\\infty`: clip; :math:`\\ell_2`: :math:`x_0 + \\delta \\min(1, \\varepsilon /
\\|\\delta\\|)`) computed per sample in float64 numpy, norms from ``numpy.linalg.norm``,
*scripted* attacks for the cascade (each stage flips the samples its plan names and
stamps its index into the example) and, for the loop, a linear "model" whose gradient is
known in closed form, so every iterate, loss and record has an exact expected value.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from attack_fixtures import one_cpu_thread
from torch import nn

from krylovadv.torch.attacks import APGD, APGDT, Cascade, Square, first_order_cascade
from krylovadv.torch.attacks.base import (
    DEFAULT_SEED,
    Attack,
    AttackResult,
    AttackTrace,
    StepState,
    _keep_better,
    _Run,
    eval_mode,
)
from krylovadv.torch.attacks.norms import NORMS, L2Norm, LinfNorm, Norm, get_norm


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


def rand(shape, seed, dtype=torch.float64, low=0.0, high=1.0):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(shape, generator=g, dtype=dtype)


# =============================================================================================
# norms.py
# =============================================================================================


def ref_project(x_adv: np.ndarray, x: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """Per-sample closed-form projection onto the ball, then the box (float64)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        delta = (x_adv[i] - x[i]).astype(np.float64)
        if norm == "linf":
            delta = np.clip(delta, -eps, eps)
        else:
            length = np.linalg.norm(delta.ravel())
            delta = delta * (min(1.0, eps / length) if length > 0 else 1.0)
        out[i] = np.clip(x[i] + delta, 0.0, 1.0)
    return out


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("eps", [0.05, 0.3, 2.0])
def test_projection_matches_the_closed_form_per_sample(norm, eps):
    x = rand((6, 2, 3, 3), seed=1)
    # Points near, inside and far from the ball, and outside the box on both sides.
    scale = torch.tensor([0.0, 0.01, 0.2, 1.0, 3.0, 0.5], dtype=torch.float64)
    x_adv = x + scale.view(-1, 1, 1, 1) * rand((6, 2, 3, 3), seed=2, low=-1.0, high=1.0)
    got = get_norm(norm).project(x_adv, x, eps)
    assert got.dtype == torch.float64 and got.shape == x.shape
    np.testing.assert_allclose(
        got.numpy(), ref_project(x_adv.numpy(), x.numpy(), eps, norm), rtol=0, atol=1e-15
    )


def test_linf_projection_clips_to_the_box_on_both_sides():
    x = torch.tensor([[0.05, 0.95, 0.5, 0.5]])
    x_adv = torch.tensor([[-0.5, 1.5, 0.53, 0.2]])
    got = LinfNorm().project(x_adv, x, 0.1)
    torch.testing.assert_close(got, torch.tensor([[0.0, 1.0, 0.53, 0.4]]), rtol=0, atol=1e-7)


def test_l2_projection_leaves_points_inside_the_ball_where_they_are():
    x = torch.full((2, 3), 0.5, dtype=torch.float64)
    delta = torch.tensor([[0.03, -0.04, 0.0], [0.3, 0.0, -0.4]], dtype=torch.float64)
    got = L2Norm().project(x + delta, x, 0.1)
    # Sample 0: ||delta|| = 0.05 < 0.1 stays; sample 1: ||delta|| = 0.5 shrinks by 0.2.
    expected = torch.tensor([[0.53, 0.46, 0.5], [0.56, 0.5, 0.42]], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_is_idempotent_and_the_nearest_point_when_the_box_is_inactive(norm):
    strategy = get_norm(norm)
    eps = 0.1
    x = rand((5, 8), seed=3, low=0.3, high=0.7)  # the ball lies inside the box
    x_adv = x + rand((5, 8), seed=4, low=-0.5, high=0.5)
    p = strategy.project(x_adv, x, eps)
    torch.testing.assert_close(strategy.project(p, x, eps), p, rtol=0, atol=1e-15)
    # No point of the ball (sampled, plus the vertices for l_inf) is closer to x_adv.
    for k in range(200):
        q = strategy.project(x + rand((5, 8), seed=100 + k, low=-eps, high=eps), x, eps)
        closer = strategy.distance(q, x_adv) if norm == "linf" else L2Norm().distance(q, x_adv)
        mine = strategy.distance(p, x_adv) if norm == "linf" else L2Norm().distance(p, x_adv)
        assert bool((closer >= mine - 1e-12).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_distance_is_the_per_sample_vector_norm(dtype):
    x = rand((4, 1, 3, 2), seed=5, dtype=dtype)
    x_adv = rand((4, 1, 3, 2), seed=6, dtype=dtype)
    diff = (x_adv - x).double().numpy().reshape(4, -1)
    for name, order in (("linf", np.inf), ("l2", 2)):
        got = get_norm(name).distance(x_adv, x)
        assert got.shape == (4,) and got.dtype == dtype
        np.testing.assert_allclose(
            got.double().numpy(), np.linalg.norm(diff, ord=order, axis=1), rtol=1e-6
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_l2_normalize_treats_norms_up_to_the_smallest_normal_as_zero(dtype):
    tiny = torch.finfo(dtype).tiny
    d = torch.tensor([[tiny], [2 * tiny], [3.0], [0.0]], dtype=dtype)
    got = L2Norm().normalize(d)
    # ||d|| = tiny: a zero step (an exactly zero gradient rounds no better); 2 tiny: unit.
    torch.testing.assert_close(got, torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=dtype))


def test_steps_stay_in_the_box():
    x = torch.tensor([[0.95, 0.05, 0.5]])
    d = torch.tensor([[1.0, -1.0, 0.0]])
    torch.testing.assert_close(LinfNorm().step(x, d, 0.2), torch.tensor([[1.0, 0.0, 0.5]]))
    torch.testing.assert_close(
        L2Norm().step(x, d, 0.2 * 2**0.5), torch.tensor([[1.0, 0.0, 0.5]]), rtol=0, atol=1e-7
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linf_random_start_is_x_plus_uniform_noise_from_the_generator(dtype):
    x = rand((3, 1, 4, 4), seed=7, dtype=dtype)
    eps = 0.2
    got = LinfNorm().random_start(x, eps, torch.Generator().manual_seed(11))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(11), dtype=dtype)
    expected = np.clip(x.double().numpy() + (2 * u.double().numpy() - 1) * eps, 0, 1)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_l2_random_start_is_a_gaussian_direction_at_a_uniform_radius(dtype):
    """Direction: the generator's first draw (Gaussian), radius: eps times its next (uniform)."""
    x = rand((4, 1, 3, 3), seed=8, dtype=dtype)
    eps = 0.4
    got = L2Norm().random_start(x, eps, torch.Generator().manual_seed(12))
    g = torch.Generator().manual_seed(12)
    gauss = torch.randn(x.shape, generator=g, dtype=dtype).double().numpy().reshape(4, -1)
    radius = eps * torch.rand((4,), generator=g, dtype=dtype).double().numpy()
    xs = x.double().numpy().reshape(4, -1)
    expected = np.stack(
        [np.clip(xs[i] + gauss[i] / np.linalg.norm(gauss[i]) * radius[i], 0, 1) for i in range(4)]
    )
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_allclose(got.double().numpy().reshape(4, -1), expected, rtol=0, atol=1e-6)
    # Reproducible from the generator, and the radii differ per sample.
    again = L2Norm().random_start(x, eps, torch.Generator().manual_seed(12))
    assert torch.equal(got, again)
    assert len(set(np.round(radius, 12))) == 4


def test_get_norm_errors_name_the_argument_and_list_the_choices():
    with pytest.raises(ValueError, match=r"^norm must be one of \['l2', 'linf'\]; got 'l1'\.$"):
        get_norm("l1")
    with pytest.raises(ValueError, match=r"^threat must be one of .*; got 2\.$"):
        get_norm(2, name="threat")
    assert sorted(NORMS) == ["l2", "linf"]
    assert isinstance(get_norm("L2"), L2Norm) and isinstance(get_norm("Linf"), LinfNorm)


def test_norm_base_class_is_abstract_and_reprs_name_the_class():
    base, x = Norm(), torch.zeros(1, 2)
    for call in (
        lambda: base.random_start(x, 0.1, torch.Generator()),
        lambda: base.normalize(x),
        lambda: base.project(x, x, 0.1),
        lambda: base.distance(x, x),
    ):
        with pytest.raises(NotImplementedError):
            call()
    assert repr(LinfNorm()) == "LinfNorm()" and repr(L2Norm()) == "L2Norm()"


# =============================================================================================
# cascade.py
# =============================================================================================

N_CASCADE = 10


class ModeSensitive(nn.Module):
    """Class = larger of pixels 0 and 1 (pixel 2 is the identity); negated in train mode.

    A cascade that judged robustness in train mode would see every prediction flipped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x.flatten(1).to(self.w.dtype) @ self.w.T  # a stage may return float64
        return -logits if self.training else logits


def cascade_problem():
    """Ten samples, class i % 2; sample 9 is labelled wrongly (a clean error)."""
    x = torch.zeros(N_CASCADE, 1, 1, 4)
    for i in range(N_CASCADE):
        top = i % 2
        x[i, 0, 0, top], x[i, 0, 0, 1 - top] = 0.55, 0.45
        x[i, 0, 0, 2] = 0.01 * (i + 1)
        x[i, 0, 0, 3] = 0.5
    y = torch.tensor([i % 2 for i in range(N_CASCADE)])
    y[9] = 1 - y[9]
    return x, y


def ident(row: torch.Tensor) -> int:
    return round(float(row.flatten()[2]) * 100) - 1


class Stage:
    """A scripted attack: flips the samples of ``plan``, stamps ``stage`` into pixel 3."""

    def __init__(self, stage: int, plan: set[int], *, eps=0.1, norm="linf", dtype=None):
        self.stage, self.plan, self.eps, self.norm, self.dtype = stage, plan, eps, norm, dtype
        self.seen: list[list[int]] = []

    def __call__(self, x, y):
        ids = [ident(r) for r in x]
        self.seen.append(ids)
        out = x.clone()
        out[:, 0, 0, 3] = 0.5 + 0.01 * (self.stage + 1)  # which stage made this example
        for j, i in enumerate(ids):
            if i in self.plan:
                out[j, 0, 0, 0], out[j, 0, 0, 1] = x[j, 0, 0, 1], x[j, 0, 0, 0]
        return out if self.dtype is None else out.to(self.dtype)

    def __repr__(self) -> str:
        return f"Stage{self.stage}"


def expected_adv(x, broken_by):
    out = x.clone()
    for i, k in enumerate(broken_by):
        if k >= 0:
            out[i, 0, 0, 0], out[i, 0, 0, 1] = x[i, 0, 0, 1], x[i, 0, 0, 0]
            out[i, 0, 0, 3] = 0.5 + 0.01 * (k + 1)
    return out


@pytest.mark.parametrize("training", [False, True])
def test_cascade_bookkeeping_is_exact(training):
    model = ModeSensitive().train(training)
    x, y = cascade_problem()
    x_in = x.clone()
    # Stage 1 also plans to flip sample 1, which stage 0 already broke: it must never see it.
    stages = [Stage(0, {0, 1}), Stage(1, {1, 2, 3}, dtype=torch.float64), Stage(2, {4, 9})]
    cascade = Cascade(model, stages)
    assert cascade.broken_by is None
    x_adv = cascade(x, y)
    assert [s.seen for s in stages] == [[list(range(9))], [list(range(2, 9))], [[4, 5, 6, 7, 8]]]
    np.testing.assert_array_equal(cascade.broken_by, [0, 0, 1, 1, 2, -1, -1, -1, -1, -2])
    assert x_adv.dtype == torch.float32
    torch.testing.assert_close(x_adv, expected_adv(x, cascade.broken_by), rtol=0, atol=0)
    assert torch.equal(x, x_in)
    assert model.training is training  # the mode is restored


def test_cascade_stops_once_every_sample_is_broken_and_handles_a_single_survivor():
    x, y = cascade_problem()
    x, y = x[:4], y[:4]
    first, second = Stage(0, {0, 1, 2, 3}), Stage(1, {0})
    cascade = Cascade(ModeSensitive(), [first, second])
    x_adv = cascade(x, y)
    assert isinstance(x_adv, torch.Tensor) and second.seen == []
    np.testing.assert_array_equal(cascade.broken_by, [0, 0, 0, 0])
    # One sample left after stage 0: stage 1 still attacks it (and breaks it).
    first, second, third = Stage(0, {0, 1, 2}), Stage(1, {3}), Stage(2, set())
    cascade = Cascade(ModeSensitive(), [first, second, third])
    x_adv = cascade(x, y)
    assert second.seen == [[3]] and third.seen == []
    np.testing.assert_array_equal(cascade.broken_by, [0, 0, 0, 1])
    torch.testing.assert_close(x_adv, expected_adv(x, cascade.broken_by), rtol=0, atol=0)


def test_cascade_construction_checks_and_attributes():
    model = ModeSensitive()
    with pytest.raises(TypeError, match=r"^model must be callable; got int\.$"):
        Cascade(3, [Stage(0, set())])
    with pytest.raises(ValueError, match=r"^attacks must hold at least one attack\.$"):
        Cascade(model, [])
    # Norm names (strings or Norm objects) must agree, and an attack without one does not.
    with pytest.raises(ValueError, match="same norm and eps"):
        Cascade(model, [Stage(0, set(), norm="linf"), Stage(1, set(), norm="l2")])
    with pytest.raises(ValueError, match="same norm and eps"):
        Cascade(model, [Stage(0, set(), norm=LinfNorm()), Stage(1, set(), norm="l2")])
    bare = Stage(1, set())
    del bare.norm
    with pytest.raises(ValueError, match="same norm and eps"):
        Cascade(model, [Stage(0, set()), bare])
    a = Stage(0, set(), eps=0.25, norm=LinfNorm())
    b = Stage(1, set(), eps=np.float32(0.25), norm=LinfNorm())
    cascade = Cascade(model, [a, b])
    assert cascade.name == "Cascade" and cascade.model is model
    assert cascade.norm is a.norm and cascade.eps is a.eps and cascade.broken_by is None
    assert repr(cascade) == "Cascade('Cascade': Stage0, Stage1)"
    assert repr(Cascade(model, [a], name="mine")) == "Cascade('mine': Stage0)"


def test_first_order_cascade_members_and_defaults():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10)).eval()
    cascade = first_order_cascade(model, eps=0.1, seed=7)
    apgd, apgdt, square = cascade.attacks
    assert type(apgd) is APGD and type(apgdt) is APGDT and type(square) is Square
    assert apgd.steps == apgdt.steps == 100 and apgd.loss_name == "ce"
    assert apgdt.n_target_classes == 9 and square.queries == 5000
    assert apgd.seed == apgdt.seed == square.seed == 7
    assert all(a.norm.name == "linf" and a.eps == 0.1 for a in cascade.attacks)
    assert cascade.name == "cascade(APGD-CE 100, APGD-T 100×9, Square 5000)"
    small = first_order_cascade(
        model, norm="l2", eps=1.0, steps=3, n_target_classes=2, square_queries=1
    )
    assert small.name == "cascade(APGD-CE 3, APGD-T 3×2, Square 1)"
    assert [a.steps for a in small.attacks] == [3, 3, 1]
    assert small.attacks[1].n_target_classes == 2 and small.attacks[2].queries == 1
    assert all(a.seed == 0 for a in small.attacks)
    none = first_order_cascade(model, eps=0.1, steps=3, square_queries=0)
    assert none.name == "cascade(APGD-CE 3, APGD-T 3×9)" and len(none.attacks) == 2


# =============================================================================================
# base.py
# =============================================================================================


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def reference_attack(W, x, y, *, eps, alpha, steps, norm, early_stop):
    """Projected ascent on the CE loss of the linear model ``z = W x``, one sample at a time.

    Returns the final points, the per-step loss, gradient norm and success (frozen samples
    carrying their values forward) and which (step, sample) pairs were updated.
    """
    B, T = x.shape[0], steps
    xs = x.reshape(B, -1)
    loss, gnorm = np.full((T + 1, B), np.nan), np.full((T + 1, B), np.nan)
    succ, updated = np.zeros((T + 1, B), bool), np.zeros((T, B), bool)
    out = xs.copy()
    for i in range(B):
        x0, xt, frozen = xs[i], xs[i].copy(), None

        def at(p, i=i):
            z = W @ p
            prob = softmax(z)
            onehot = np.eye(len(z))[y[i]]
            return -np.log(prob[y[i]]), W.T @ (prob - onehot), bool(np.argmax(z) != y[i])

        for t in range(T):
            lt, g, st = at(xt)
            loss[t, i], gnorm[t, i], succ[t, i] = lt, np.linalg.norm(g), st
            if early_stop and st:
                frozen = t
                break
            updated[t, i] = True
            u = np.sign(g) if norm == "linf" else g / np.linalg.norm(g)
            d = np.clip(xt + alpha * u, 0, 1) - x0  # the step stays in the box
            if norm == "linf":
                d = np.clip(d, -eps, eps)
            else:
                d = d * min(1.0, eps / np.linalg.norm(d))
            xt = np.clip(x0 + d, 0, 1)
        if frozen is not None:
            for arr in (loss, gnorm, succ):
                arr[frozen + 1 : T, i] = arr[frozen, i]
        lt, g, st = at(xt)
        loss[T, i], gnorm[T, i], succ[T, i] = lt, np.linalg.norm(g), st
        out[i] = xt
    return out.reshape(x.shape), loss, gnorm, succ, updated


class Counting(nn.Module):
    """The linear model ``z = W x`` that records the batch size of every forward pass."""

    def __init__(self, W: np.ndarray, dtype=torch.float64) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(W, dtype=dtype))
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return x.flatten(1) @ self.w.T


class GradAttack(Attack):
    """PGD on the gradient; records the step, the distance to x and a draw of the generator."""

    name = "GradAttack"

    def direction(self, x_adv, x, y, state):
        state.record("step", [state.step] * len(state.indices))
        state.record("dist", (x_adv - x).flatten(1).abs().amax(dim=1))
        state.record("draw", torch.rand(len(state.indices), generator=state.generator))
        return state.gradient


class Float64Direction(GradAttack):
    """A direction in float64 for float32 inputs (the loop must keep the input's dtype)."""

    def direction(self, x_adv, x, y, state):
        return state.gradient.double()


class ShrinkingUpdate(GradAttack):
    """An update that uses its state: step t moves by alpha / (t + 1)."""

    def update(self, x_adv, direction, state):
        return self.norm.step(x_adv, direction, self.alpha / (state.step + 1))


def problem_base(dtype=torch.float64):
    """Six samples of 4 pixels, a 3-class linear model; sample 5 is a clean error.

    Under l_inf PGD (eps 0.3, alpha 0.1, 4 steps) the samples are first misclassified at
    steps 1, 2, never, never, 3 and 0.
    """
    r = np.random.default_rng(0)
    W = r.normal(size=(3, 4))
    x = r.uniform(0.1, 0.9, size=(6, 1, 2, 2))
    y = (x.reshape(6, -1) @ W.T).argmax(1)
    y[5] = (y[5] + 1) % 3
    return W, torch.as_tensor(x, dtype=dtype), torch.as_tensor(y)


SETTINGS = {"linf": {"eps": 0.3, "alpha": 0.1}, "l2": {"eps": 0.6, "alpha": 0.2}}


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("early_stop", [False, True])
def test_loop_matches_a_per_sample_reference(norm, early_stop):
    W, x, y = problem_base()
    cfg = SETTINGS[norm]
    out, loss, gnorm, succ, updated = reference_attack(
        W, x.numpy(), y.numpy(), steps=4, norm=norm, early_stop=early_stop, **cfg
    )
    if early_stop and norm == "linf":  # the scenario is informative
        first = [int(np.argmax(succ[:, i])) if succ[:, i].any() else -1 for i in range(6)]
        assert first == [1, 2, -1, -1, 3, 0]
    model = Counting(W)
    attack = GradAttack(model, norm=norm, steps=4, early_stop=early_stop, seed=3, **cfg)
    result = attack.run(x, y)
    np.testing.assert_allclose(result.x_adv.numpy(), out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.trace.loss, loss, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.trace.grad_norm, gnorm, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.trace.success, succ)
    np.testing.assert_allclose(result.loss.numpy(), loss[-1], rtol=1e-12)
    np.testing.assert_array_equal(result.success.numpy(), succ[-1])
    np.testing.assert_array_equal(result.restart, np.zeros(6, dtype=np.int64))
    assert result.restart.dtype == np.int64
    # Diagnostics: NaN where a sample was not updated; the step and distance of the iterate.
    steps = np.where(updated, np.arange(4)[:, None], np.nan)
    np.testing.assert_array_equal(result.diagnostics["step"], steps)
    assert np.isnan(result.diagnostics["dist"][~updated]).all()
    assert (result.diagnostics["dist"][0][updated[0]] == 0).all()
    assert (result.diagnostics["dist"][1:][updated[1:]] > 0).all()
    # The draws come from the run's generator, seeded with the attack's seed, in step order.
    g = torch.Generator().manual_seed(3)
    draws = np.full((4, 6), np.nan)
    for t in range(4):
        draws[t, updated[t]] = torch.rand(int(updated[t].sum()), generator=g).double().numpy()
    np.testing.assert_array_equal(result.diagnostics["draw"], draws)
    # __call__: the same points, and only the unfinished samples reach the model.
    model.sizes.clear()
    assert torch.equal(attack(x, y), result.x_adv)
    if early_stop:
        active = np.ones(6, bool)
        expected = []
        for t in range(4):
            if active.any():
                expected.append(int(active.sum()))
                active &= updated[t]
                if active.any():
                    expected.append(int(active.sum()))
        assert model.sizes == expected
    else:
        assert model.sizes == [6, 6, 6, 6]


def test_early_stop_with_a_single_sample_left_still_updates_it():
    W, x, y = problem_base()
    model = Counting(W)
    attack = GradAttack(model, eps=0.3, alpha=0.1, steps=4, early_stop=True)
    pair = [2, 5]  # sample 5 is frozen at step 0, sample 2 is attacked alone
    out, *_ = reference_attack(
        W,
        x[pair].numpy(),
        y[pair].numpy(),
        eps=0.3,
        alpha=0.1,
        steps=4,
        norm="linf",
        early_stop=True,
    )
    np.testing.assert_allclose(attack(x[pair], y[pair]).numpy(), out, rtol=0, atol=1e-12)
    # The records of a lone sample (every state holds one row).
    for rows in (pair, [2]):
        _, loss, gnorm, succ, _ = reference_attack(
            W,
            x[rows].numpy(),
            y[rows].numpy(),
            eps=0.3,
            alpha=0.1,
            steps=4,
            norm="linf",
            early_stop=True,
        )
        trace = attack.run(x[rows], y[rows]).trace
        np.testing.assert_allclose(trace.loss, loss, rtol=1e-12)
        np.testing.assert_allclose(trace.grad_norm, gnorm, rtol=1e-12)
        np.testing.assert_array_equal(trace.success, succ)
    assert not torch.equal(torch.as_tensor(out[0]), x[2])
    # Batch == loop.
    batch = attack(x, y)
    for i in range(6):
        torch.testing.assert_close(attack(x[i : i + 1], y[i : i + 1]), batch[i : i + 1])


def test_the_loop_keeps_the_input_dtype_and_passes_the_state_to_update():
    W, x, y = problem_base(torch.float32)
    attack = Float64Direction(Counting(W, torch.float32), eps=0.3, alpha=0.1, steps=3)
    assert attack(x, y).dtype == torch.float32
    assert attack(x[:1], y[:1]).dtype == torch.float32
    W, x, y = problem_base()
    shrinking = ShrinkingUpdate(Counting(W), eps=10.0, alpha=0.1, steps=3)
    plain = GradAttack(Counting(W), eps=10.0, alpha=0.1, steps=1)
    # Steps 0.1, 0.05, 0.1/3 along the sign of the gradient, without projection: the first
    # step is plain PGD's, and the total move of a pixel is at most their sum.
    moved = (shrinking(x, y) - x).abs().amax().item()
    assert moved <= 0.1 + 0.05 + 0.1 / 3 + 1e-12 and moved > 0.1 + 1e-9
    one = ShrinkingUpdate(Counting(W), eps=10.0, alpha=0.1, steps=1)
    assert torch.equal(one(x, y), plain(x, y))


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_when_asked(monkeypatch):
    W, x, y = problem_base()
    attack = GradAttack(Counting(W), norm="l2", eps=0.6, steps=3)
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    fresh = GradAttack(Counting(W), norm="l2", eps=0.6, steps=3)
    assert list(fresh._steps(2)) == [0, 1]  # outside a run: no bar
    attack(x, y)  # __call__ never shows a bar, even on a terminal
    assert term.getvalue() == ""
    attack.run(x, y, progress=False)
    assert term.getvalue() == ""
    attack.run(x, y)  # auto: on a terminal
    text = term.getvalue()
    assert "GradAttack-l2:" in text and "step/s" in text  # label Class-norm, unit "step"
    assert attack._progress is False
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # auto: not a terminal
    attack.run(x, y)
    assert sys.stderr.getvalue() == ""
    attack.run(x, y, progress=True)
    assert "GradAttack-l2" in sys.stderr.getvalue()


def test_run_without_trace_still_reports_success_and_loss():
    W, x, y = problem_base()
    attack = GradAttack(Counting(W), eps=0.3, alpha=0.1, steps=4)
    _, loss, _, succ, _ = reference_attack(
        W, x.numpy(), y.numpy(), eps=0.3, alpha=0.1, steps=4, norm="linf", early_stop=False
    )
    result = attack.run(x, y, trace=False)
    assert result.trace is None
    np.testing.assert_array_equal(result.success.numpy(), succ[-1])
    np.testing.assert_allclose(result.loss.numpy(), loss[-1], rtol=1e-12)
    assert result.robust_accuracy == pytest.approx(1 - succ[-1].mean())


def test_per_sample_loss_uses_the_attack_loss_and_kappa():
    W, x, y = problem_base()
    logits = torch.as_tensor(x.flatten(1).numpy() @ W.T)
    attack = GradAttack(Counting(W), eps=0.1, loss="cw", kappa=0.3)
    z = logits.numpy()
    margin = np.array([np.max(np.delete(z[i], y[i])) - z[i, y[i]] for i in range(6)])
    np.testing.assert_allclose(
        attack.per_sample_loss(logits, y).numpy(), np.minimum(margin, 0.3), rtol=1e-12
    )
    assert (margin > 0.3).any() and (margin < 0.3).any()


def test_step_state_caches_slices_and_hands_over():
    W, x, y = problem_base()
    model = Counting(W)
    attack = GradAttack(model, eps=0.1)
    g = torch.Generator()
    state = StepState(attack, x, y, 2, g, np.arange(6))
    assert state.step == 2 and state.generator is g and state.attack is attack
    fresh = state.subset(torch.tensor([True, False, True, False, False, True]))
    assert model.sizes == []
    torch.testing.assert_close(fresh.logits, x[[0, 2, 5]].flatten(1) @ model.w.T.detach())
    assert model.sizes == [3]  # computed on the subset only
    grad = state.gradient
    assert model.sizes == [3, 6]
    keep = torch.tensor([False, True, True, False, True, False])
    sub = state.subset(keep)
    assert sub.step == 2 and sub.generator is g and sub.attack is attack
    np.testing.assert_array_equal(sub.indices, [1, 2, 4])
    assert torch.equal(sub.gradient, grad[keep]) and torch.equal(sub.loss, state.loss[keep])
    assert torch.equal(sub.logits, state.logits[keep]) and torch.equal(sub.y, y[keep])
    assert model.sizes == [3, 6]  # sliced, not recomputed
    other = StepState(attack, x, y, 0, g, np.arange(6))
    other.provide(loss=torch.arange(6.0), gradient=torch.ones(6, 4))
    assert torch.equal(other.loss, torch.arange(6.0)) and other.gradient.shape == x.shape
    assert torch.equal(other.gradient, torch.ones_like(x)) and model.sizes == [3, 6]
    handed = other.subset(keep)  # a handed-over loss is sliced, not recomputed
    assert torch.equal(handed.loss, torch.tensor([1.0, 2.0, 4.0]))
    assert torch.equal(handed.gradient, torch.ones(3, 1, 2, 2, dtype=torch.float64))
    assert model.sizes == [3, 6]
    other.record("a", torch.tensor([[1.5], [2.5]]))
    other.record("b", [1, 2, 3])
    assert other.records["a"].dtype == np.float64 and other.records["a"].shape == (2,)
    np.testing.assert_array_equal(other.records["a"], [1.5, 2.5])
    assert other.records["b"].dtype == np.float64
    np.testing.assert_array_equal(other.records["b"], [1.0, 2.0, 3.0])


def make_run(x_adv, loss, success, diag=None, trace=None):
    return _Run(
        x_adv=torch.as_tensor(x_adv, dtype=torch.float64),
        loss=torch.as_tensor(loss, dtype=torch.float64),
        success=torch.as_tensor(success),
        trace=trace,
        diagnostics={} if diag is None else diag,
    )


def test_restarts_keep_a_success_over_a_failure_then_the_higher_loss():
    best = make_run(np.zeros((5, 1)), [1.0, 5.0, 2.0, 2.0, 3.0], [False, True, False, True, False])
    best.trace = AttackTrace(np.zeros((2, 5)), np.zeros((2, 5)), np.zeros((2, 5), bool))
    todo = torch.tensor([True, True, True, True, False])
    # Per todo sample: success beats failure (even at a lower loss); a failure never beats a
    # success; same outcome: strictly higher loss only.
    run = make_run(
        np.arange(1.0, 5.0)[:, None],
        [0.0, 9.0, 3.0, 2.0],
        [True, False, False, True],
        diag={"d": np.array([[10.0, 11.0, 12.0, 13.0]])},
        trace=AttackTrace(np.ones((2, 4)), 2 * np.ones((2, 4)), np.ones((2, 4), bool)),
    )
    better = _keep_better(best, run, todo)
    np.testing.assert_array_equal(better.numpy(), [True, False, True, False])
    np.testing.assert_array_equal(best.x_adv[:, 0].numpy(), [1.0, 0, 3.0, 0, 0])
    np.testing.assert_array_equal(best.loss.numpy(), [0.0, 5.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(best.success.numpy(), [True, True, False, True, False])
    np.testing.assert_array_equal(best.trace.loss[1], [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(best.trace.grad_norm[0], [2, 0, 2, 0, 0])
    np.testing.assert_array_equal(best.trace.success[1], [True, False, True, False, False])
    # A diagnostic only the restart recorded: NaN for the samples it did not improve.
    np.testing.assert_array_equal(best.diagnostics["d"], [[10.0, np.nan, 12.0, np.nan, np.nan]])
    # A rerun on a subset that improves one sample; one that improves none changes nothing.
    todo2 = torch.tensor([False, False, False, False, True])
    run2 = make_run([[7.0]], [4.0], [False], diag={"d": np.array([[20.0]])})
    assert _keep_better(best, run2, todo2).tolist() == [True]
    np.testing.assert_array_equal(best.diagnostics["d"], [[10.0, np.nan, 12.0, np.nan, 20.0]])
    assert best.x_adv[4, 0] == 7.0 and best.loss[4] == 4.0
    run3 = make_run([[8.0]], [1.0], [False], diag={"d": np.array([[30.0]])})
    assert _keep_better(best, run3, todo2).tolist() == [False]
    assert best.x_adv[4, 0] == 7.0 and best.diagnostics["d"][0, 4] == 20.0


def test_restarts_and_early_stop_through_the_public_loop():
    W, x, y = problem_base()
    model = Counting(W)
    kwargs = {"eps": 0.3, "alpha": 0.1, "steps": 2, "random_start": True, "early_stop": True}
    attack = GradAttack(model, restarts=3, seed=3, **kwargs)
    result = attack.run(x, y, trace=False)
    single_model = Counting(W)
    single = GradAttack(single_model, seed=3, **kwargs).run(x, y, trace=False)
    assert set(result.restart.tolist()) == {0, 1, 2}  # the scenario is informative
    kept = torch.as_tensor(result.restart == 0)
    assert torch.equal(result.x_adv[kept], single.x_adv[kept])
    later = ~kept
    # A later restart replaced restart 0 only where it was better for the attacker.
    assert bool((result.success[later] & ~single.success[later]).any())
    assert bool(
        (
            (result.success[later] & ~single.success[later])
            | (
                (result.success[later] == single.success[later])
                & (result.loss[later] > single.loss[later])
            )
        ).all()
    )
    with torch.no_grad():
        fooled_adv = (result.x_adv.flatten(1) @ model.w.T).argmax(1) != y
    assert torch.equal(result.success, fooled_adv)
    # Later restarts attack only the samples restart 0 left robust.
    single_model.sizes.clear()
    GradAttack(single_model, seed=3, **kwargs)(x, y)
    model.sizes.clear()
    attack(x, y)
    first = [*single_model.sizes, 6]  # restart 0, then its evaluation
    assert model.sizes[: len(first)] == first
    rest = model.sizes[len(first) :]
    robust0 = int((~single.success).sum())
    assert rest[0] == robust0 and max(rest) == robust0 < 6
    # Two restarts: restart 0 is evaluated (its success decides what restart 1 attacks).
    two = GradAttack(Counting(W), restarts=2, seed=3, **kwargs)
    assert torch.equal(two(x, y), two.run(x, y).x_adv)
    assert two.run(x, y).restart.dtype == np.int64


class KeepsBatchNormTraining(nn.Module):
    """A model whose ``eval()`` forgets its BatchNorm (the loop must refuse it)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 3)

    def train(self, mode: bool = True):
        self.training = mode
        self.fc.train(mode)
        return self

    def forward(self, x):
        return self.fc(self.bn(x.flatten(1)))


def test_a_model_whose_eval_leaves_batchnorm_training_is_refused():
    model = KeepsBatchNormTraining()
    with pytest.raises(ValueError, match="BatchNorm1d module 'bn' is in training mode"):
        GradAttack(model, eps=0.1)(torch.rand(2, 1, 2, 2), torch.tensor([0, 1]))
    assert model.training and model.bn.training


def test_attack_settings_are_checked_and_named():
    model = Counting(np.eye(3, 4))
    with pytest.raises(TypeError, match=r"^model must be a torch\.nn\.Module .*; got int\.$"):
        GradAttack(3, eps=0.1)
    with pytest.raises(TypeError, match=r"^random_start must be True or False; got 1\.$"):
        GradAttack(model, eps=0.1, random_start=1)
    with pytest.raises(TypeError, match=r"^early_stop must be True or False; got 'yes'\.$"):
        GradAttack(model, eps=0.1, early_stop="yes")
    for seed in (True, 1.0, -1):
        with pytest.raises(ValueError, match=r"^seed must be None or an int >= 0; got "):
            GradAttack(model, eps=0.1, seed=seed)
    with pytest.raises(ValueError, match="kappa"):
        GradAttack(model, eps=0.1, kappa=-1.0)
    attack = GradAttack(model, eps=0.2, steps=5, random_start=np.bool_(True), seed=0)
    assert attack.alpha == pytest.approx(2.5 * 0.2 / 5) and attack.seed == 0
    assert attack.random_start is True and not attack.deterministic
    assert GradAttack(model, eps=0.2, alpha=0.0).alpha == 0.0
    with pytest.raises(ValueError, match=r"^norm must be one of \['l2', 'linf'\]"):
        GradAttack(model, eps=0.1, norm="l1")

    def margin(logits, y):
        return -logits.gather(1, y[:, None])[:, 0]

    custom = GradAttack(model, eps=0.1, loss=margin)
    assert custom.loss is margin
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert torch.equal(
        custom.per_sample_loss(logits, torch.tensor([2, 0])), torch.tensor([-3.0, -4.0])
    )
    default = GradAttack(model, eps=0.2)
    assert default.seed == DEFAULT_SEED and default.norm.name == "linf" and default.loss == "ce"
    assert (default.steps, default.kappa, default.restarts) == (10, 50.0, 1)
    assert default.random_start is False and default.early_stop is False
    assert repr(GradAttack(model, norm="l2", eps=0.5, steps=4, alpha=0.25, loss="cw")) == (
        "GradAttack(norm='l2', eps=0.5, steps=4, alpha=0.25, loss='cw', "
        "random_start=False, restarts=1)"
    )
    with pytest.raises(NotImplementedError):
        Attack(model, eps=0.1)(torch.zeros(1, 4, dtype=torch.float64), torch.tensor([0]))


def test_inputs_that_need_gradients_and_plain_callables():
    W, x, y = problem_base()
    model = Counting(W)
    expected = GradAttack(model, eps=0.3, steps=2)(x, y)
    x_req = x.clone().requires_grad_(True)
    got = GradAttack(model, eps=0.3, steps=2)(x_req, y)
    assert torch.equal(got, expected) and not got.requires_grad and x_req.grad is None
    assert model.w.requires_grad and model.w.grad is None
    w = torch.as_tensor(W)
    plain = GradAttack(lambda t: t.flatten(1) @ w.T, eps=0.3, steps=2)(x, y)
    assert torch.equal(plain, expected)
    with eval_mode(len):  # a non-module passes through
        pass


def test_trace_and_result_summaries():
    trace = AttackTrace(
        loss=np.array([[1.0, 3.0], [2.0, 6.0]]),
        grad_norm=np.array([[0.5, 1.5], [1.0, 1.0]]),
        success=np.array([[False, False], [True, False]]),
    )
    assert len(trace) == 2
    np.testing.assert_array_equal(trace.mean_loss, [2.0, 4.0])
    np.testing.assert_array_equal(trace.mean_grad_norm, [1.0, 1.0])
    np.testing.assert_array_equal(trace.success_rate, [0.0, 0.5])
    result = AttackResult(
        x_adv=torch.zeros(4, 1),
        success=torch.tensor([True, False, False, False]),
        loss=torch.zeros(4),
        restart=np.zeros(4, dtype=np.int64),
        diagnostics={"fallback": np.array([[1.0, np.nan, 0.0, 1.0], [1.0, 0.0, np.nan, 0.0]])},
    )
    assert result.robust_accuracy == 0.75 and result.num_fallbacks == 3
    assert (
        AttackResult(
            torch.zeros(1), torch.zeros(1, dtype=torch.bool), torch.zeros(1), np.zeros(1)
        ).num_fallbacks
        == 0
    )


@pytest.mark.parametrize("norm", [LinfNorm(), L2Norm()], ids=["linf", "l2"])
def test_random_start_draws_on_the_inputs_device(norm):
    """The noise is drawn on x's device, not on torch's default device: under a "meta"
    default device (standing in for a GPU default with CPU inputs) the start must be the
    same CPU tensor as without it."""
    x = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = norm.random_start(x, 0.25, torch.Generator().manual_seed(0))
    with torch.device("meta"):
        got = norm.random_start(x, 0.25, torch.Generator().manual_seed(0))
    assert got.device == x.device
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
