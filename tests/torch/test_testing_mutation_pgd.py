r"""PGD (Madry et al.) and FGSM / FGM (Goodfellow et al.) against a per-sample reference.

Written to kill the mutants of ``krylovadv/torch/attacks/pgd.py`` and
``krylovadv/torch/attacks/fgsm.py`` that the behavioural tests let survive
(``python tools/run_mutation.py torch/attacks/pgd``; the equivalent ones are listed in
docs/dev/mutation-reports/torch-pgd-fgsm.md).

The model is linear, :math:`z = W x + b`, so the input gradient of each loss is known in
closed form: :math:`W^T(\operatorname{softmax}(z) - e_y)` for cross-entropy, and
:math:`w_{j^*} - w_y` for the CW margin below :math:`\kappa` (zero above it).  The
reference runs the update rule one sample at a time in numpy, float64: the step
:math:`x + \alpha\,u(g)` clipped to :math:`[0, 1]`, then the projection onto the ε-ball
and the box; the random start is drawn, as documented, from a ``torch.Generator`` seeded
with the attack's seed (uniform on :math:`[-\varepsilon, \varepsilon]^d` for
:math:`\ell_\infty`, a Gaussian direction at a radius uniform on :math:`[0, \varepsilon]`
for :math:`\ell_2`).  Restarts keep, per sample, a success over a failure and otherwise the
higher final loss.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchattacks
from attack_fixtures import one_cpu_thread
from torch import nn

from krylovadv.torch.attacks import FGSM, PGD

D, K = 12, 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


class Linear(nn.Module):
    """Logits ``W x + b`` on flattened inputs; ``W`` and ``b`` also kept as numpy arrays."""

    def __init__(self, seed: int, scale: float = 1.0, bias: np.ndarray | None = None) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.W = scale * rng.standard_normal((K, D))
        self.b = rng.standard_normal(K) if bias is None else np.asarray(bias, dtype=float)
        self.weight = nn.Parameter(torch.from_numpy(self.W.copy()))
        self.bias = nn.Parameter(torch.from_numpy(self.b.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def data(seed: int, batch: int, low: float = 0.0, high: float = 1.0):
    rng = np.random.default_rng(seed + 100)
    x = torch.from_numpy(rng.uniform(low, high, (batch, 1, 3, 4)))
    y = torch.from_numpy(rng.integers(0, K, batch))
    return x, y


def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


# -- the reference ---------------------------------------------------------------------------


def ref_loss_grad(model: Linear, xi: np.ndarray, yi: int, loss: str, kappa: float):
    """Loss and input gradient of one sample (a flat numpy vector) in closed form."""
    z = model.W @ xi + model.b
    if loss == "ce":
        p = np.exp(z - z.max())
        p /= p.sum()
        e = np.zeros(K)
        e[yi] = 1.0
        return float(-np.log(p[yi])), model.W.T @ (p - e)
    others = [j for j in range(K) if j != yi]
    j_star = max(others, key=lambda j: z[j])
    margin = z[j_star] - z[yi]
    if margin >= kappa:  # min(margin, kappa) is flat there
        return float(kappa), np.zeros(D)
    return float(margin), model.W[j_star] - model.W[yi]


def misclassified(model: Linear, xi: np.ndarray, yi: int) -> bool:
    return int(np.argmax(model.W @ xi + model.b)) != yi


def ref_step(x0, xk, g, norm, eps, alpha):
    """One projected step x^{t+1} = Pi(x^t + alpha u(g)) of one sample."""
    if norm == "linf":
        u = np.sign(g)
    else:
        n = np.linalg.norm(g)
        u = g / n if n > 0 else np.zeros_like(g)
    xn = np.clip(xk + alpha * u, 0.0, 1.0)
    delta = xn - x0
    if norm == "linf":
        delta = np.clip(delta, -eps, eps)
    else:
        n = np.linalg.norm(delta)
        if n > eps:
            delta = delta * (eps / n)
    return np.clip(x0 + delta, 0.0, 1.0)


def ref_run(model, x0, yi, start, *, norm, eps, alpha, steps, loss, kappa, early_stop):
    """T steps from ``start``; return (point, final loss, success)."""
    xk = start.copy()
    for _ in range(steps):
        if early_stop and misclassified(model, xk, yi):
            break
        _, g = ref_loss_grad(model, xk, yi, loss, kappa)
        xk = ref_step(x0, xk, g, norm, eps, alpha)
    f, _ = ref_loss_grad(model, xk, yi, loss, kappa)
    return xk, f, misclassified(model, xk, yi)


def ref_starts(x: torch.Tensor, norm: str, eps: float, gen: torch.Generator) -> np.ndarray:
    """The documented random start of every row of ``x``, drawn from ``gen``."""
    flat = x.flatten(1).numpy()
    if norm == "linf":
        noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).flatten(1).numpy()
        return np.clip(flat + (2 * noise - 1) * eps, 0.0, 1.0)
    gauss = torch.randn(x.shape, generator=gen, dtype=x.dtype).flatten(1).numpy()
    radius = eps * torch.rand((x.shape[0],), generator=gen, dtype=x.dtype).numpy()
    delta = gauss / np.linalg.norm(gauss, axis=1, keepdims=True) * radius[:, None]
    return np.clip(flat + delta, 0.0, 1.0)


def ref_pgd(
    model,
    x,
    y,
    *,
    norm,
    eps,
    alpha,
    steps,
    loss="ce",
    kappa=50.0,
    random_start=True,
    restarts=1,
    early_stop=False,
    seed=0,
):
    """The whole attack: restarts over per-sample runs, each sample keeping its worst case."""
    gen = torch.Generator().manual_seed(seed)
    B = x.shape[0]
    flat = x.flatten(1).numpy()
    best = [None] * B
    for r in range(restarts):
        todo = [i for i in range(B) if not (early_stop and best[i] is not None and best[i][2])]
        if not todo:
            break
        sub = x[todo]
        starts = ref_starts(sub, norm, eps, gen) if random_start else sub.flatten(1).numpy()
        for k, i in enumerate(todo):
            out = ref_run(
                model,
                flat[i],
                int(y[i]),
                starts[k],
                norm=norm,
                eps=eps,
                alpha=alpha,
                steps=steps,
                loss=loss,
                kappa=kappa,
                early_stop=early_stop,
            )
            old = best[i]
            if old is None or (out[2] and not old[2]) or (out[2] == old[2] and out[1] > old[1]):
                best[i] = (*out, r)
    return best


def check(result, best, x) -> None:
    for i, (xi, f, s, r) in enumerate(best):
        np.testing.assert_allclose(
            result.x_adv[i].flatten().numpy(), xi, rtol=0, atol=1e-12, err_msg=f"sample {i}"
        )
        assert bool(result.success[i]) == s, i
        assert float(result.loss[i]) == pytest.approx(f, rel=1e-10, abs=1e-12), i
        assert int(result.restart[i]) == r, i
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype


# -- PGD -------------------------------------------------------------------------------------


def test_pgd_defaults_are_madrys_linf_setting():
    """Default: l_inf, 40 steps of 2.5 eps / 40, CE, one uniform random start from seed 0."""
    model = Linear(0)
    x, y = data(0, 6)
    eps = 0.05
    attack = PGD(model, eps=eps)
    assert (attack.norm.name, attack.steps, attack.restarts) == ("linf", 40, 1)
    assert attack.alpha == pytest.approx(2.5 * eps / 40)
    assert attack.kappa == 50.0 and attack.random_start and not attack.early_stop
    best = ref_pgd(model, x, y, norm="linf", eps=eps, alpha=2.5 * eps / 40, steps=40)
    check(attack.run(x, y), best, x)
    # The start is random (not x): the same attack without it lands elsewhere.
    plain = PGD(model, eps=eps, random_start=False)(x, y)
    assert not torch.equal(plain, attack(x, y))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_every_argument_reaches_the_loop(norm):
    """Explicit steps, alpha, CW loss with a small kappa, seed, restarts and early stop."""
    model = Linear(1, scale=2.0)
    x, _ = data(1, 10)
    y = predicted(model, x)  # every sample starts correctly classified
    eps, kappa = (0.1, 0.3) if norm == "linf" else (0.4, 0.3)
    kw = dict(
        norm=norm,
        eps=eps,
        steps=3,
        alpha=eps / 3,
        loss="cw",
        kappa=kappa,
        random_start=True,
        restarts=3,
        early_stop=True,
        seed=5,
    )
    result = PGD(model, **kw).run(x, y)
    best = ref_pgd(model, x, y, **kw)
    check(result, best, x)
    # The problem exercises what it is meant to: some samples succeed, some not; the CW
    # margin saturates at kappa; a later restart wins somewhere.
    succ = [b[2] for b in best]
    assert any(succ) and not all(succ)
    assert any(b[1] == kappa for b in best)
    assert any(b[3] > 0 for b in best)


def test_pgd_without_early_stop_keeps_pushing_misclassified_samples():
    """early_stop=False (the default) keeps stepping after success; True freezes the sample."""
    model = Linear(2, scale=2.0)
    x, y = data(2, 8)
    kw = dict(norm="linf", eps=0.2, steps=6, alpha=0.05, random_start=False, seed=0)
    for early in (False, True):
        result = PGD(model, early_stop=early, **kw).run(x, y)
        check(result, ref_pgd(model, x, y, early_stop=early, **kw), x)
    late = PGD(model, **kw)(x, y)
    frozen = PGD(model, early_stop=True, **kw)(x, y)
    assert not torch.equal(late, frozen)


def test_pgd_seed_reproduces_and_selects_the_start():
    model = Linear(3)
    x, y = data(3, 4)
    kw = dict(eps=0.1, steps=2, alpha=0.01)  # short steps: the start still shows at the end
    a = PGD(model, seed=7, **kw)(x, y)
    b = PGD(model, seed=7, **kw)(x, y)
    c = PGD(model, seed=8, **kw)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_without_random_start_equals_torchattacks(norm):
    model = Linear(4)
    # Away from the box: torchattacks' PGDL2 projects before clipping to [0, 1], this
    # library clips the step first; the two agree while no pixel reaches 0 or 1.
    x, y = data(4, 8, low=0.3, high=0.7)
    eps = 0.1 if norm == "linf" else 0.25
    ours = PGD(model, norm=norm, eps=eps, steps=5, alpha=eps / 4, random_start=False)(x, y)
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    theirs = cls(model, eps=eps, alpha=eps / 4, steps=5, random_start=False)(x, y)
    # torchattacks differentiates the batch mean (the same sign; the same unit direction up
    # to its 1e-10 guard in the l2 norm).
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"eps": -0.1}, "eps"),
        ({"eps": 0.1, "steps": 0}, "steps"),
        ({"eps": 0.1, "restarts": 0}, "restarts"),
        ({"eps": 0.1, "norm": "l1"}, "norm"),
        ({"eps": 0.1, "loss": "mse"}, "loss"),
        ({"eps": 0.1, "alpha": -1.0}, "alpha"),
    ],
)
def test_pgd_bad_arguments_are_named(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        PGD(Linear(0), **kwargs)


# -- FGSM / FGM ------------------------------------------------------------------------------


def test_fgsm_is_one_signed_step_of_eps():
    """x + eps sign(g), clipped to [0, 1]: the reference and torchattacks' FGSM."""
    model = Linear(5)
    x, y = data(5, 10)
    eps = 0.07
    attack = FGSM(model, eps=eps)
    assert (attack.norm.name, attack.steps, attack.alpha, attack.kappa) == ("linf", 1, eps, 50.0)
    assert not attack.random_start and attack.deterministic
    result = attack.run(x, y)
    best = ref_pgd(model, x, y, norm="linf", eps=eps, alpha=eps, steps=1, random_start=False)
    check(result, best, x)
    theirs = torchattacks.FGSM(model, eps=eps)(x, y)
    torch.testing.assert_close(result.x_adv, theirs, rtol=0, atol=1e-12)


def test_fgm_l2_step_is_eps_along_the_gradient_near_the_box():
    """l2: x + eps g/||g|| clipped to the box, not a longer step rescaled to the ball."""
    model = Linear(6)
    x, y = data(6, 10, low=0.85, high=1.0)  # the step leaves the box: clipping matters
    eps = 0.5
    result = FGSM(model, eps=eps, norm="l2").run(x, y)
    best = ref_pgd(model, x, y, norm="l2", eps=eps, alpha=eps, steps=1, random_start=False)
    check(result, best, x)
    flat = x.flatten(1).numpy()
    for i in range(len(y)):
        _, g = ref_loss_grad(model, flat[i], int(y[i]), "ce", 50.0)
        direct = np.clip(flat[i] + eps * g / np.linalg.norm(g), 0, 1)
        np.testing.assert_allclose(result.x_adv[i].flatten().numpy(), direct, atol=1e-12)
    moved = (result.x_adv - x).flatten(1).norm(dim=1)
    assert bool((moved < eps - 1e-3).any())  # the box took something away somewhere


def test_fgsm_cw_loss_and_its_kappa():
    """loss="cw" with kappa: samples beyond the margin kappa get a zero gradient and stay."""
    model = Linear(7, scale=2.0)
    x, _ = data(7, 12)
    y = predicted(model, x)
    y[1::2] = (y[1::2] + 1) % K  # half the samples misclassified, by various margins
    kappa = 0.5
    result = FGSM(model, eps=0.1, loss="cw", kappa=kappa).run(x, y)
    best = ref_pgd(
        model,
        x,
        y,
        norm="linf",
        eps=0.1,
        alpha=0.1,
        steps=1,
        loss="cw",
        kappa=kappa,
        random_start=False,
    )
    check(result, best, x)
    flat = x.flatten(1).numpy()
    saturated = [
        ref_loss_grad(model, flat[i], int(y[i]), "cw", kappa)[0] == kappa for i in range(len(y))
    ]
    assert any(saturated) and not all(saturated)
    for i, sat in enumerate(saturated):
        assert torch.equal(result.x_adv[i], x[i]) == sat, i


def test_fgsm_default_kappa_is_50():
    """A sample whose wrong class leads by 50.5 is saturated at kappa = 50 and stays put."""
    model = Linear(8, scale=0.01, bias=[0.0, 50.5, 0.0, 0.0])
    x, _ = data(8, 3)
    y = torch.zeros(3, dtype=torch.long)
    assert torch.equal(FGSM(model, eps=0.1, loss="cw")(x, y), x)
    assert not torch.equal(FGSM(model, eps=0.1, loss="cw", kappa=51.0)(x, y), x)
    assert torch.equal(PGD(model, eps=0.1, steps=2, loss="cw", random_start=False)(x, y), x)


def test_fgsm_bad_eps_is_named():
    with pytest.raises(ValueError, match="eps"):
        FGSM(Linear(0), eps=-1.0)
