"""APGD and APGD-T (Croce & Hein, 2020) against an independent per-sample reference.

Written to kill the mutants of ``krylovadv/torch/attacks/apgd.py`` that the
behavioural tests let survive (``python tools/run_mutation.py torch/attacks/apgd``;
the equivalent ones are listed in docs/dev/mutation-reports/torch-apgd.md).

The reference below runs Algorithm 1 of Croce & Hein one sample at a time, with
plain Python scalars for the step size, the counters and the checkpoint
decisions, and its own DLR losses and checkpoint schedule.  The attack run on a
whole batch must reproduce it: the same step size and restart decision at every
step, the same returned point, loss, success and trace.  The reference also
counts how often each branch of the step-size rule was taken, so that a test
fails if its problem stops exercising the law it is meant to check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from attack_fixtures import one_cpu_thread
from torch import nn

from krylovadv.torch.attacks import APGD, APGDT, get_norm
from krylovadv.torch.attacks.apgd import checkpoints, dlr_loss, dlr_targeted_loss
from krylovadv.torch.losses import ce_loss, cw_loss


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


# -- the reference ---------------------------------------------------------------------------


def ref_dlr(z: torch.Tensor, y: int) -> float:
    """Croce & Hein, eq. 5, from a Python sort of one sample's logits."""
    v = [float(t) for t in z]
    top = sorted(v, reverse=True)
    other = max(v[i] for i in range(len(v)) if i != y)
    return -(v[y] - other) / (top[0] - top[2] + 1e-12)


def ref_dlr_targeted(z: torch.Tensor, y: int, t: int) -> float:
    """The targeted DLR of Croce & Hein, from a Python sort of one sample's logits."""
    v = [float(u) for u in z]
    top = sorted(v, reverse=True)
    return -(v[y] - v[t]) / (top[0] - 0.5 * (top[2] + top[3]) + 1e-12)


def ref_schedule(n: int) -> list[int]:
    """Checkpoints ceil(p_j n) of Croce & Hein, in hundredths (integers only)."""
    p_prev, p, out = 0, 22, [0]
    while p <= 100:
        w = -(-p * n // 100)
        if w > out[-1]:
            out.append(w)
        p_prev, p = p, p + max(p - p_prev - 3, 6)
    return out


@dataclass
class RefRun:
    x_out: torch.Tensor
    f_out: float
    s_out: bool
    eta: list[float]  # step size used at each step taken
    restarted: list[float]  # 1.0 where the step ended in a halving
    trace_loss: list[float]  # objective at x^k, k = 0, 1, ... (the point the step starts from)
    trace_grad: list[float]
    trace_succ: list[bool]
    g_out: float = float("nan")  # gradient norm at the returned point
    branches: dict[str, int] = field(default_factory=dict)


def ref_apgd(
    model: nn.Module,
    x0: torch.Tensor,
    y: int,
    start: torch.Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    objective,
    momentum: float = 0.75,
    rho: float = 0.75,
    early_stop: bool = False,
) -> RefRun:
    """One sample (``x0`` of shape ``(1, ...)``) through Algorithm 1; ``objective(z) -> float``."""
    nrm = get_norm(norm)

    def evaluate(x):
        xr = x.detach().clone().requires_grad_(True)
        z = model(xr)
        f = objective(z)
        (g,) = torch.autograd.grad(f.sum(), xr)
        return float(f.detach()[0]), g, int(z[0].argmax()) != y

    x_cur = start.clone()
    f_cur, g_cur, s_cur = evaluate(x_cur)
    x_prev = x_cur.clone()
    x_max, f_max, g_max, s_max = x_cur.clone(), f_cur, g_cur.clone(), s_cur
    x_out, f_out, s_out = x_cur.clone(), f_cur, s_cur
    g_out = g_cur.clone()
    eta = 2.0 * eps
    marks = ref_schedule(steps)
    window = {marks[j]: marks[j] - marks[j - 1] for j in range(1, len(marks)) if marks[j] < steps}
    count, f_max_last, halved_last = 0, f_max, False
    run = RefRun(x_out, f_out, s_out, [], [], [], [], [])
    run.branches = {"cond1": 0, "cond2": 0, "none": 0, "tie": 0}
    for k in range(steps):
        run.trace_loss.append(f_cur)
        run.trace_grad.append(float(torch.linalg.vector_norm(g_cur.flatten(1), dim=1)[0]))
        run.trace_succ.append(s_cur)
        if early_stop and s_cur:
            break
        run.eta.append(eta)
        z = nrm.project(x_cur + eta * nrm.normalize(g_cur), x0, eps)
        if k == 0:
            x_new = z
        else:
            step = momentum * (z - x_cur) + (1 - momentum) * (x_cur - x_prev)
            x_new = nrm.project(x_cur + step, x0, eps)
        f_new, g_new, s_new = evaluate(x_new)
        increased = f_new > f_cur
        if f_new > f_max:
            x_max, f_max, g_max, s_max = x_new.clone(), f_new, g_new.clone(), s_new
        if (s_new and not s_out) or (s_new == s_out and f_new > f_out):
            x_out, f_out, s_out, g_out = x_new.clone(), f_new, s_new, g_new.clone()
        x_prev, x_cur, f_cur, g_cur, s_cur = x_cur, x_new, f_new, g_new, s_new
        halve = False
        if k in window:
            cond1 = count < rho * window[k]
            cond2 = (not halved_last) and f_max <= f_max_last
            run.branches["tie"] += count == rho * window[k]
            run.branches["cond1"] += cond1 and not cond2
            run.branches["cond2"] += cond2 and not cond1
            run.branches["none"] += not (cond1 or cond2)
            halve = cond1 or cond2
            if halve:
                eta /= 2
                x_cur, x_prev = x_max.clone(), x_max.clone()
                f_cur, g_cur, s_cur = f_max, g_max.clone(), s_max
            halved_last, f_max_last, count = halve, f_max, 0
        run.restarted.append(float(halve))
        count += int(increased)
    run.x_out, run.f_out, run.s_out = x_out, f_out, s_out
    run.g_out = float(torch.linalg.vector_norm(g_out.flatten(1), dim=1)[0])
    return run


def ce_objective(y: int):
    return lambda z: ce_loss(z, torch.tensor([y]))


def cw_objective(y: int, kappa: float):
    return lambda z: cw_loss(z, torch.tensor([y]), kappa=kappa)


def dlr_objective(y: int):
    """Eq. 5 of Croce & Hein on logits (1, K), with the attack's order of operations."""

    def f(z: torch.Tensor) -> torch.Tensor:
        top = torch.sort(z[0], descending=True).values
        other = torch.cat([z[0, :y], z[0, y + 1 :]]).max()
        return (-(z[0, y] - other) / (top[0] - top[2] + 1e-12))[None]

    return f


def dlr_t_objective(y: int, t: int):
    def f(z: torch.Tensor) -> torch.Tensor:
        top = torch.sort(z[0], descending=True).values
        return (-(z[0, y] - z[0, t]) / (top[0] - 0.5 * (top[2] + top[3]) + 1e-12))[None]

    return f


# -- problems --------------------------------------------------------------------------------


class RowMLP(nn.Module):
    """A one-hidden-layer tanh network whose rows are computed independently.

    Products and sums run over each row on its own (no matrix product), so a
    sample's logits, loss and gradient are bitwise the same in any batch: the
    batched attack and the one-sample reference see identical numbers, and
    their decisions (``f(x^{k+1}) > f(x^k)`` at rounding level) agree exactly.
    """

    def __init__(self, seed: int, classes: int, width: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(width, 16, generator=g, dtype=torch.float64) / 4)
        self.b1 = nn.Parameter(torch.randn(width, generator=g, dtype=torch.float64) / 4)
        w2 = torch.randn(classes, width, generator=g, dtype=torch.float64)
        self.w2 = nn.Parameter(w2 / math.sqrt(width))
        self.b2 = nn.Parameter(torch.zeros(classes, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh((x.flatten(1)[:, None, :] * self.w1).sum(-1) + self.b1)
        return (h[:, None, :] * self.w2).sum(-1) + self.b2


def mlp(seed: int, classes: int = 10, width: int = 12) -> nn.Module:
    return RowMLP(seed, classes, width).eval()


def data(seed: int, batch: int, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (batch,), generator=g)
    return x, y


def compare(result, refs, x) -> None:
    """The batch run (an AttackResult with trace) equals the per-sample reference runs."""
    B = x.shape[0]
    eta = result.diagnostics["step_size"]
    restarted = result.diagnostics["restarted"]
    steps = eta.shape[0]
    for i, ref in enumerate(refs):
        n, m = len(ref.eta), len(ref.trace_loss)
        np.testing.assert_array_equal(eta[:n, i], ref.eta, err_msg=f"eta of sample {i}")
        assert np.isnan(eta[n:, i]).all(), i
        np.testing.assert_array_equal(restarted[:n, i], ref.restarted, err_msg=f"sample {i}")
        assert np.isnan(restarted[n:, i]).all(), i
        # The decisions above agree exactly; the points may differ in the last bits (the
        # l2 norm and the elementwise kernels round differently for 1 and for B rows).
        torch.testing.assert_close(result.x_adv[i], ref.x_out[0], rtol=0, atol=1e-13)
        assert bool(result.success[i]) == ref.s_out, i
        assert float(result.loss[i]) == pytest.approx(ref.f_out, rel=1e-12, abs=1e-14), i
        np.testing.assert_allclose(result.trace.loss[:m, i], ref.trace_loss, rtol=1e-12)
        np.testing.assert_allclose(
            result.trace.grad_norm[:m, i], ref.trace_grad, rtol=1e-12, atol=1e-14
        )
        np.testing.assert_array_equal(result.trace.success[:m, i], ref.trace_succ)
        # A sample frozen by early stop carries its last iterate (x^m-1) forward.
        for t in range(m, steps):
            assert result.trace.loss[t, i] == pytest.approx(ref.trace_loss[-1], rel=1e-12)
            assert result.trace.success[t, i] == ref.trace_succ[-1], (i, t)
        assert result.trace.loss[steps, i] == pytest.approx(ref.f_out, rel=1e-12, abs=1e-14)
        # Row N is the returned point, with its own gradient (not the last iterate's).
        assert result.trace.grad_norm[steps, i] == pytest.approx(ref.g_out, rel=1e-12, abs=1e-14)
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert len(result.trace) == steps + 1 and eta.shape[1] == B


def total(refs, name: str) -> int:
    return sum(r.branches[name] for r in refs)


# -- tests -----------------------------------------------------------------------------------


def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's own labels: every sample starts correctly classified."""
    with torch.no_grad():
        return model(x).argmax(1)


@pytest.mark.parametrize(
    ("norm", "eps", "loss", "seed", "rho", "width", "branches"),
    [
        # every branch of the step-size rule, and exact ties count == rho * window
        ("l2", 1.0, "ce", 0, 0.5, 64, ("cond1", "cond2", "none", "tie")),
        ("l2", 0.5, "dlr", 1, 0.25, 12, ("cond1", "cond2", "none")),
        ("linf", 0.1, "cw", 2, 0.75, 12, ("cond1",)),  # some samples stay robust
    ],
)
def test_batch_equals_per_sample_reference(norm, eps, loss, seed, rho, width, branches):
    model = mlp(seed, width=width)
    x, _ = data(seed, 12)
    y = predicted(model, x)
    steps, kappa = 30, 0.4
    attack = APGD(
        model,
        norm=norm,
        eps=eps,
        steps=steps,
        loss=loss,
        kappa=kappa,
        random_start=False,
        rho=rho,
    )
    result = attack.run(x, y)
    refs = []
    for i in range(len(y)):
        yi = int(y[i])
        obj = {
            "ce": ce_objective(yi),
            "dlr": dlr_objective(yi),
            "cw": cw_objective(yi, kappa),
        }[loss]
        refs.append(
            ref_apgd(
                model,
                x[i : i + 1],
                yi,
                x[i : i + 1],
                norm=norm,
                eps=eps,
                steps=steps,
                objective=obj,
                rho=rho,
            )
        )
    compare(result, refs, x)
    # The problem exercises the branches of the step-size rule it is chosen for.
    for name in branches:
        assert total(refs, name) > 0, (name, [r.branches for r in refs])
    if loss == "cw":
        assert 0 < int(result.success.sum()) < len(y)


def test_random_start_momentum_rho_and_early_stop():
    model = mlp(3)
    x, y = data(3, 10)
    steps, eps = 25, 0.2
    attack = APGD(model, eps=eps, steps=steps, seed=5, momentum=0.4, rho=0.5, early_stop=True)
    result = attack.run(x, y)
    start = get_norm("linf").random_start(x, eps, torch.Generator().manual_seed(5))
    refs = [
        ref_apgd(
            model,
            x[i : i + 1],
            int(y[i]),
            start[i : i + 1],
            norm="linf",
            eps=eps,
            steps=steps,
            objective=ce_objective(int(y[i])),
            momentum=0.4,
            rho=0.5,
            early_stop=True,
        )
        for i in range(len(y))
    ]
    compare(result, refs, x)
    assert any(len(r.eta) < steps for r in refs) and any(len(r.eta) == steps for r in refs)
    # __call__ returns the same points as run().
    torch.testing.assert_close(attack(x, y), result.x_adv, rtol=0, atol=0)


def test_one_gradient_per_iteration():
    """N iterations cost N gradients (the start and steps 1..N-1), none at the last point."""
    model = mlp(5)
    x, y = data(5, 3)
    calls = {"grad": 0, "plain": 0}

    def counted(inp):
        calls["grad" if inp.requires_grad else "plain"] += 1
        return model(inp)

    for steps in (1, 2, 7):
        calls.update(grad=0, plain=0)
        APGD(counted, eps=0.1, steps=steps)(x, y)
        assert calls["grad"] == steps, (steps, calls)


def test_first_step_has_no_momentum_and_step_is_two_eps():
    """x^1 = P(x^0 + 2 eps sign(grad)); with steps=1 that point is returned if it is better."""
    model = mlp(6)
    x, y = data(6, 5)
    eps = 0.05
    attack = APGD(model, eps=eps, steps=1, random_start=False)
    assert attack.alpha == 2 * eps
    out = attack.run(x, y)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(ce_loss(model(xr), y).sum(), xr)
    z = torch.clamp(torch.clamp(x + 2 * eps * g.sign() - x, -eps, eps) + x, 0, 1)
    with torch.no_grad():
        fz = ce_loss(model(z), y)
        f0 = ce_loss(model(x), y)
    expected = torch.where((fz > f0).view(-1, 1, 1, 1), z, x)
    torch.testing.assert_close(out.x_adv, expected, rtol=0, atol=1e-15)
    assert np.all(out.diagnostics["step_size"] == 2 * eps)
    assert np.all(out.diagnostics["restarted"] == 0.0)


def test_apgdt_equals_per_sample_reference():
    """Each sample: targets ranked by the clean logits, first success kept, else highest DLR."""
    model = mlp(7, classes=6)
    x, y = data(7, 8, classes=6)
    steps, eps, n_t = 12, 0.08, 3
    attack = APGDT(model, eps=eps, steps=steps, n_target_classes=n_t, random_start=False)
    out = attack.run(x, y)
    with torch.no_grad():
        clean = model(x)
    wins = 0
    for i in range(len(y)):
        yi = int(y[i])
        order = [c for c in torch.argsort(clean[i], descending=True).tolist() if c != yi]
        best = None
        for t in order[:n_t]:
            ref = ref_apgd(
                model,
                x[i : i + 1],
                yi,
                x[i : i + 1],
                norm="linf",
                eps=eps,
                steps=steps,
                objective=dlr_t_objective(yi, t),
            )
            with torch.no_grad():
                f = ref_dlr(model(ref.x_out)[0], yi)
            cand = (ref.x_out, f, ref.s_out)
            if best is None or (cand[2] and not best[2]) or (cand[2] == best[2] and f > best[1]):
                best = cand
            if best[2]:
                break
        torch.testing.assert_close(out.x_adv[i], best[0][0], rtol=0, atol=1e-12)
        assert bool(out.success[i]) == best[2]
        assert float(out.loss[i]) == pytest.approx(best[1], rel=1e-10)
        wins += best[2]
    assert 0 < wins < len(y)
    # The trace of a targeted run records the targeted DLR at x^0 (first target).
    t0 = next(c for c in torch.argsort(clean[0], descending=True).tolist() if c != int(y[0]))
    assert out.trace.loss[0, 0] == pytest.approx(ref_dlr_targeted(clean[0], int(y[0]), t0))


def test_apgdt_stops_when_every_sample_is_misclassified():
    """A sample misclassified by the first target is not attacked again."""
    model = mlp(8, classes=5)
    x, _ = data(8, 4, classes=5)
    with torch.no_grad():
        predicted_class = model(x).argmax(1)
    y_wrong = (predicted_class + 1) % 5  # every sample misclassified at the start
    calls = {"n": 0}

    def counted(inp):
        calls["n"] += int(inp.requires_grad)
        return model(inp)

    APGDT(counted, eps=0.01, steps=4, n_target_classes=4, random_start=False)(x, y_wrong)
    assert calls["n"] == 4  # one target sweep only


def test_apgdt_arguments():
    model = mlp(9, classes=5)
    x, y = data(9, 2, classes=5)
    with pytest.raises(TypeError, match="n_target_classes must be an int; got True"):
        APGDT(model, eps=0.1, n_target_classes=True)
    with pytest.raises(TypeError, match=r"n_target_classes must be an int; got 2\.0"):
        APGDT(model, eps=0.1, n_target_classes=2.0)
    with pytest.raises(ValueError, match="n_target_classes must be >= 1; got 0"):
        APGDT(model, eps=0.1, n_target_classes=0)
    assert APGDT(model, eps=0.1, n_target_classes=1).n_target_classes == 1
    assert APGDT(model, eps=0.1).n_target_classes == 9
    msg = r"n_target_classes=5 exceeds the 4 wrong classes of this model; use at most 4\."
    with pytest.raises(ValueError, match=msg):
        APGDT(model, eps=0.1, steps=2, n_target_classes=5)(x, y)
    APGDT(model, eps=0.1, steps=2, n_target_classes=4)(x, y)  # K - 1 is allowed
    a = APGDT(
        model,
        norm="l2",
        eps=0.5,
        steps=7,
        n_target_classes=2,
        random_start=False,
        restarts=2,
        momentum=0.5,
        rho=0.25,
    )
    assert repr(a) == (
        "APGDT(norm='l2', eps=0.5, steps=7, n_target_classes=2, random_start=False, restarts=2)"
    )
    assert (a.momentum, a.rho, a.loss_name, a.alpha, a.eps) == (0.5, 0.25, "dlr", 1.0, 0.5)
    assert a.loss is dlr_loss and a.name == "APGD-T"
    d = APGDT(model, eps=0.1)
    assert (d.steps, d.random_start, d.restarts, d.early_stop, d.momentum, d.rho) == (
        100,
        True,
        1,
        False,
        0.75,
        0.75,
    )
    e = APGDT(model, eps=0.1, early_stop=True, seed=3)
    assert e.early_stop and e.seed == 3


def test_apgd_arguments_and_repr():
    model = mlp(10)
    a = APGD(
        model,
        eps=0.25,
        steps=9,
        loss="cw",
        kappa=3.0,
        random_start=False,
        restarts=2,
        momentum=0.5,
        rho=0.25,
        early_stop=True,
        seed=4,
        norm="l2",
    )
    assert repr(a) == (
        "APGD(norm='l2', eps=0.25, steps=9, loss='cw', momentum=0.5, rho=0.25, "
        "random_start=False, restarts=2)"
    )
    assert (a.kappa, a.early_stop, a.seed, a.alpha, a.loss) == (3.0, True, 4, 0.5, "cw")
    d = APGD(model, eps=0.1)
    assert (d.steps, d.loss, d.kappa, d.random_start, d.restarts, d.early_stop) == (
        100,
        "ce",
        50.0,
        True,
        1,
        False,
    )
    assert (d.momentum, d.rho, d.name) == (0.75, 0.75, "APGD")
    assert APGD(model, eps=0.1, loss="dlr").loss is dlr_loss
    assert APGD(model, eps=0.1, loss=dlr_loss).loss_name == "dlr_loss"
    assert APGD(model, eps=0.1, loss=lambda z, y: z[:, 0]).loss_name == "<lambda>"

    class Loss:
        def __call__(self, z, y):
            return z[:, 0]

    assert APGD(model, eps=0.1, loss=Loss()).loss_name == "callable"
    for name in ("momentum", "rho"):
        assert getattr(APGD(model, eps=0.1, **{name: 1.0}), name) == 1.0
        assert getattr(APGD(model, eps=0.1, **{name: 0.0}), name) == 0.0
        with pytest.raises(ValueError, match=rf"{name} must be in \[0, 1\]; got 1.5"):
            APGD(model, eps=0.1, **{name: 1.5})
        with pytest.raises(ValueError, match=name):
            APGD(model, eps=0.1, **{name: -0.1})


def test_dlr_exact_values():
    z = torch.tensor(
        [[3.0, 1.0, 2.0, -1.0], [0.5, 4.0, -2.0, 1.0], [1.0, 1.0, 1.0, 0.0]], dtype=torch.float64
    )
    y = torch.tensor([0, 2, 3])
    got = dlr_loss(z, y)
    want = [ref_dlr(z[i], int(y[i])) for i in range(3)]
    assert got.tolist() == pytest.approx(want, rel=1e-15)
    # Row 0: -(3 - 2) / (3 - 1); row 2: the gap of the top three is 0, so the 1e-12 guard is
    # the whole denominator.
    assert float(got[0]) == pytest.approx(-1 / (2 + 1e-12), rel=1e-15) and float(
        got[2]
    ) == pytest.approx(1e12, rel=1e-12)
    t = torch.tensor([3, 0, 1])
    got_t = dlr_targeted_loss(z, y, t)
    want_t = [ref_dlr_targeted(z[i], int(y[i]), int(t[i])) for i in range(3)]
    assert got_t.tolist() == pytest.approx(want_t, rel=1e-15)
    assert float(got_t[0]) == pytest.approx(-4.0 / (3.0 - 0.5 * (1.0 + -1.0)))
    with pytest.raises(ValueError, match=r"DLR needs logits \(B, K\) with K >= 3 classes; got"):
        dlr_loss(torch.zeros(4), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"got \(2, 2\)"):
        dlr_loss(torch.zeros(2, 2), torch.tensor([0, 1]))
    dlr_loss(torch.zeros(2, 3), torch.tensor([0, 1]))  # K = 3 is enough
    with pytest.raises(ValueError, match=r"targeted DLR needs logits \(B, K\) with K >= 4"):
        dlr_targeted_loss(torch.zeros(4), torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"K >= 4 classes; got \(2, 3\)\."):
        dlr_targeted_loss(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([1, 2]))
    dlr_targeted_loss(torch.zeros(2, 4), torch.tensor([0, 1]), torch.tensor([1, 2]))


def test_checkpoints_match_the_schedule():
    for n in [*range(1, 60), 100, 150, 1000]:
        assert checkpoints(n) == ref_schedule(n), n
    assert checkpoints(1) == [0, 1]
    assert checkpoints(3) == [0, 1, 2, 3]
    assert checkpoints(100)[-1] == 99 and math.ceil(0.22 * 100) == checkpoints(100)[1]


def test_early_stop_when_every_sample_is_misclassified_at_the_start():
    """The loop ends at once; the returned points are the starts, the trace is complete."""
    model = mlp(11, classes=5)
    x, _ = data(11, 3, classes=5)
    y = (predicted(model, x) + 1) % 5
    result = APGD(model, eps=0.1, steps=4, early_stop=True, random_start=False).run(x, y)
    torch.testing.assert_close(result.x_adv, x, rtol=0, atol=0)
    assert bool(result.success.all())
    assert np.isnan(result.diagnostics["step_size"]).all()
    # Row 0 holds the start, carried forward to the last row before the returned point.
    loss0 = ce_loss(model(x), y).detach().numpy()
    for t in range(5):
        np.testing.assert_allclose(result.trace.loss[t], loss0, rtol=1e-12)
        assert result.trace.success[t].all()


class Tent(nn.Module):
    """One pixel; logit 0 is f(x) + 10, f = -(x - 1/2)^2 left of 1/2, -(x - 1/2)/4 right.

    f(1/4) = f(3/4) = -1/16 exactly, with slopes 1/2 and -1/4: a tie in the loss at two
    points whose gradients differ.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.flatten(1)[:, :1] - 0.5
        f = torch.where(u < 0, -(u * u), -u / 4)
        return torch.cat([f + 10, torch.zeros_like(f), torch.zeros_like(f)], dim=1)


def test_best_point_needs_a_strict_increase():
    """x_max moves only on f(x^{k+1}) > f_max: the first of equal-loss points is kept.

    With momentum 1 (x^{k+1} = z^{k+1}): x^0 = 1/4, eta = 2 eps = 1 steps to 3/4 (a tie),
    then to 0 (worse); the checkpoint at k = 1 halves and restarts from x_max = 1/4, whose
    gradient norm (1/2, not 1/4 as at 3/4) is row 2 of the trace.
    """
    x = torch.full((1, 1, 1, 1), 0.25, dtype=torch.float64)
    y = torch.tensor([0])
    attack = APGD(
        Tent(), eps=0.5, steps=3, loss=lambda z, y: z[:, 0], momentum=1.0, random_start=False
    )
    result = attack.run(x, y)
    assert result.diagnostics["step_size"][:, 0].tolist() == [1.0, 1.0, 0.5]
    # k = 2 steps from 1/4 to 3/4 again (a tie, no increase): halved again.
    assert result.diagnostics["restarted"][:, 0].tolist() == [0.0, 1.0, 1.0]
    assert result.trace.grad_norm[:3, 0].tolist() == [0.5, 0.25, 0.5]
    assert float(result.x_adv) == 0.25  # no point beats the start


def test_apgdt_gradient_budget():
    """Robust samples: one run of ``steps`` gradients per target class, no more.

    ``run`` records the trace, which costs one more gradient per run (at its returned point).
    """
    model = mlp(12, classes=6)
    x, _ = data(12, 4, classes=6)
    y = predicted(model, x)
    calls = {"n": 0}

    def counted(inp):
        calls["n"] += int(inp.requires_grad)
        return model(inp)

    for n_t in (1, 2, 4):
        calls["n"] = 0
        out = APGDT(counted, eps=1e-4, steps=3, n_target_classes=n_t).run(x, y)
        assert not bool(out.success.any())
        # Each target: 3 steps, + the trace's gradient at the point that run returns.
        assert calls["n"] == (3 + 1) * n_t, n_t


def test_apgdt_random_starts_come_from_its_seed():
    """Every target's random start is drawn from the attack's seeded generator.

    The global generator is reseeded between two runs: the results must not change.  In
    the l2 ball the returned point depends on the start (projection onto the sphere).
    """
    model = mlp(13, classes=6)
    x, _ = data(13, 8, classes=6)
    y = predicted(model, x)
    attack = APGDT(model, norm="l2", eps=0.05, steps=3, n_target_classes=4, seed=9)
    torch.manual_seed(0)
    a = attack.run(x, y)
    torch.manual_seed(1)
    b = attack.run(x, y)
    assert not bool(a.success.all())
    torch.testing.assert_close(a.x_adv, b.x_adv, rtol=0, atol=0)
    np.testing.assert_array_equal(a.trace.loss, b.trace.loss)
    other = APGDT(model, norm="l2", eps=0.05, steps=3, n_target_classes=4, seed=10).run(x, y)
    assert not torch.equal(a.x_adv, other.x_adv)


class Decoy(nn.Module):
    """Logits (1, 0.9, 0.5 + 10 x_0, 0): the top wrong class (1) cannot be reached, the
    second (2) can, by raising pixel 0 by more than 0.05."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = x.flatten(1)[:, :1]
        one = torch.ones_like(x0)
        return torch.cat([one, 0.9 * one, 0.5 + 10 * x0, 0 * x0], dim=1)


def test_apgdt_second_target_succeeds_where_the_first_cannot():
    x = torch.zeros(2, 1, 1, 4, dtype=torch.float64)
    y = torch.tensor([0, 0])
    one = APGDT(Decoy(), eps=0.1, steps=4, n_target_classes=1, random_start=False).run(x, y)
    assert not bool(one.success.any())
    two = APGDT(Decoy(), eps=0.1, steps=4, n_target_classes=2, random_start=False).run(x, y)
    assert bool(two.success.all())
    assert float(two.x_adv[:, 0, 0, 0].min()) > 0.05
    # The trace follows the kept run: its last row is the returned point's loss.
    np.testing.assert_allclose(two.trace.loss[-1], two.loss.numpy(), rtol=1e-12)
    assert two.trace.success[-1].all()
