r"""Square attack (Andriushchenko et al., ECCV 2020) against an independent reference.

Written to kill the mutants of ``krylovadv/torch/attacks/square.py`` that the behavioural
tests let survive (``python tools/run_mutation.py torch/attacks/square``; the equivalent
ones are listed in docs/dev/mutation-reports/torch-square.md).

The reference runs the paper's random search with numpy arrays and Python loops over the
samples and channels: the margin :math:`z_y - \max_{j \ne y} z_j`, the acceptance rule
(a proposal replaces the current point only if it lowers the margin), one query per
still-correct sample and step, the schedule :math:`p_i` as a table of the paper's
breakpoints, the :math:`\ell_\infty` stripes and windows, and the :math:`\ell_2` grid
start and window update built from the paper's nested-squares pattern (a loop over the
squares, not a tail sum).  Randomness is drawn from a ``torch.Generator`` seeded with the
attack's seed, in the order the module documents: the start's signs (and each
:math:`\ell_2` block's transposition), then per query the window corner(s), the signs
and the pattern's transposition.  torchattacks' ``Square`` gives a second, peer
reference for the schedule and the pattern.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchattacks
from attack_fixtures import one_cpu_thread
from torch import nn

from krylovadv.torch.attacks import Square
from krylovadv.torch.attacks.square import _peak, l2_pattern, p_schedule

C, H, W, K = 2, 6, 6, 5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


class RowLinear(nn.Module):
    """Logits ``W x + b`` computed row by row (no matrix product).

    A sample's logits are then bitwise the same in any batch, so the batched attack and
    the one-sample reference compare the same margins and take the same decisions.
    """

    def __init__(self, seed: int, scale: float = 1.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(scale * torch.randn(K, C * H * W, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(K, generator=g, dtype=torch.float64))
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        return (x.flatten(1)[:, None, :] * self.w).sum(-1) + self.b


def problem(seed: int, batch: int, scale: float = 1.0, shape=(C, H, W)):
    model = RowLinear(seed, scale).eval()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(batch, *shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    model.calls.clear()
    return model, x, y


# -- the reference ---------------------------------------------------------------------------

#: The paper's schedule for 10,000 queries: (first rescaled query, p_init / p).
PAPER_SCHEDULE = [(0, 1), (11, 2), (51, 4), (201, 8), (501, 16), (1001, 32), (2001, 64),
                  (4001, 128), (6001, 256), (8001, 512)]  # fmt: skip


def ref_p(p_init: float, i: int, n: int) -> float:
    it = int(i / n * 10000)
    divisor = [d for first, d in PAPER_SCHEDULE if it >= first][-1]
    return p_init / divisor


def ref_rectangle(rows: int, cols: int) -> np.ndarray:
    """The paper's pattern: nested squares around the centre, square k adds 1/(k+1)^2."""
    eta = np.zeros((rows, cols))
    cr, cc = rows // 2, cols // 2
    for k in range(max(cr, cc) + 1):
        for r in range(max(cr - k, 0), min(cr + k + 1, rows)):
            for c in range(max(cc - k, 0), min(cc + k + 1, cols)):
                eta[r, c] += 1.0 / (k + 1) ** 2
    n = math.sqrt(float((eta**2).sum()))
    return eta / n if n > 0 else eta


def ref_eta(side: int) -> np.ndarray:
    """Two halves of opposite sign, unit norm (untransposed)."""
    h = side // 2
    eta = np.concatenate([ref_rectangle(h, side), -ref_rectangle(side - h, side)])
    return eta / math.sqrt(float((eta**2).sum()))


def ref_pattern(side: int, gen: torch.Generator) -> np.ndarray:
    eta = ref_eta(side)
    return eta.T.copy() if float(torch.rand((), generator=gen)) < 0.5 else eta


def draw_int(high: int, gen: torch.Generator) -> int:
    return int(torch.randint(0, high, (1,), generator=gen))


def draw_signs(shape, gen: torch.Generator) -> np.ndarray:
    return 2 * torch.randint(0, 2, shape, generator=gen).numpy().astype(np.float64) - 1


class Reference:
    def __init__(self, model, norm: str, eps: float, queries: int, p_init: float) -> None:
        self.model, self.norm, self.eps, self.n, self.p_init = model, norm, eps, queries, p_init
        self.calls: list[int] = []

    def margin(self, xi: np.ndarray, yi: int) -> float:
        with torch.no_grad():
            z = self.model(torch.from_numpy(xi)[None])[0].tolist()
        return z[yi] - max(v for j, v in enumerate(z) if j != yi)

    # l_inf
    def linf_start(self, X, gen):
        b, c, _, w = X.shape
        s = draw_signs((b, c, 1, w), gen)
        return np.clip(X + self.eps * s, 0.0, 1.0)

    def linf_proposal(self, X, D, i, gen):
        b, c, h, w = X.shape
        side = round(math.sqrt(ref_p(self.p_init, i, self.n) * h * w))
        side = min(max(side, 1), h - 1, w - 1)
        top, left = draw_int(h - side + 1, gen), draw_int(w - side + 1, gen)
        s = draw_signs((b, c, 1, 1), gen)
        D = D.copy()
        for k in range(b):
            for ch in range(c):
                D[k, ch, top : top + side, left : left + side] = self.eps * s[k, ch, 0, 0]
        return np.clip(X + D, 0.0, 1.0)

    # l_2
    def l2_start(self, X, gen):
        b, c, h, w = X.shape
        side = max(min(h, w) // 5, 1)
        nr, nc = min(5, h // side), min(5, w // side)
        pats = [[ref_pattern(side, gen) for _ in range(nc)] for _ in range(nr)]
        s = draw_signs((b, c, nr, nc), gen)
        top, left = (h - nr * side) // 2, (w - nc * side) // 2
        out = np.empty_like(X)
        for k in range(b):
            d = np.zeros((c, h, w))
            for ch in range(c):
                for r in range(nr):
                    for q in range(nc):
                        r0, q0 = top + r * side, left + q * side
                        d[ch, r0 : r0 + side, q0 : q0 + side] = s[k, ch, r, q] * pats[r][q]
            d *= self.eps / math.sqrt(float((d**2).sum()))
            out[k] = np.clip(X[k] + d, 0.0, 1.0)
        return out

    def l2_proposal(self, X, D, i, gen):
        b, c, h, w = X.shape
        side = max(round(math.sqrt(ref_p(self.p_init, i, self.n) * h * w)), 3)
        if side % 2 == 0:
            side += 1
        side = min(side, h - 1, w - 1)
        t1, c1 = draw_int(h - side + 1, gen), draw_int(w - side + 1, gen)
        t2, c2 = draw_int(h - side + 1, gen), draw_int(w - side + 1, gen)
        s = draw_signs((b, c, 1, 1), gen)
        eta = ref_pattern(side, gen)
        in_union = np.zeros((h, w), dtype=bool)
        in_union[t1 : t1 + side, c1 : c1 + side] = True
        in_union[t2 : t2 + side, c2 : c2 + side] = True
        out = np.empty_like(X)
        for k in range(b):
            d = D[k].copy()
            spare = max(self.eps**2 - float((d**2).sum()), 0.0)
            for ch in range(c):
                held = float((d[ch][in_union] ** 2).sum())
                radius = math.sqrt(spare / c + held)
                old = d[ch, t1 : t1 + side, c1 : c1 + side].copy()
                n_old = math.sqrt(float((old**2).sum()))
                old = old / n_old if n_old > 0 else old
                new = s[k, ch, 0, 0] * eta + old
                n_new = math.sqrt(float((new**2).sum()))
                # On 1 x 1 windows the fresh sign can cancel the old content: nothing is
                # placed, and the budget comes back through ``spare`` at the next query.
                new = new * (radius / n_new) if n_new > 0 else new
                d[ch, t2 : t2 + side, c2 : c2 + side] = 0.0
                d[ch, t1 : t1 + side, c1 : c1 + side] = new
            n = math.sqrt(float((d**2).sum()))
            if n > self.eps:  # rounding excess only: the budget is eps exactly
                d *= self.eps / n
            out[k] = np.clip(X[k] + d, 0.0, 1.0)
        return out

    def once(self, X, y, gen):
        B = X.shape[0]
        margin = [self.margin(X[i], int(y[i])) for i in range(B)]
        self.calls.append(B)
        best = X.copy()
        todo = [i for i in range(B) if margin[i] > 0]
        if todo:
            start = self.linf_start if self.norm == "linf" else self.l2_start
            init = start(X[todo], gen)
            self.calls.append(len(todo))
            for k, i in enumerate(todo):
                best[i] = init[k]
                margin[i] = self.margin(init[k], int(y[i]))
        improved = np.full((self.n, B), np.nan)
        propose = self.linf_proposal if self.norm == "linf" else self.l2_proposal
        for q in range(self.n):
            active = [i for i in range(B) if margin[i] > 0]
            if not active:
                break
            props = propose(X[active], best[active] - X[active], q, gen)
            self.calls.append(len(active))
            for k, i in enumerate(active):
                m = self.margin(props[k], int(y[i]))
                improved[q, i] = float(m < margin[i])
                if m < margin[i]:
                    best[i], margin[i] = props[k], m
        return best, margin, improved

    def run(self, x, y, seed, restarts=1):
        gen = torch.Generator().manual_seed(seed)
        X = x.numpy()
        best, margin, improved = self.once(X, y, gen)
        restart = np.zeros(len(y), dtype=int)
        for r in range(1, restarts):
            b2, m2, i2 = self.once(X, y, gen)
            for i in range(len(y)):
                s_old, s_new = margin[i] < 0, m2[i] < 0
                loss_old, loss_new = min(-margin[i], 50.0), min(-m2[i], 50.0)
                if (s_new and not s_old) or (s_new == s_old and loss_new > loss_old):
                    best[i], margin[i], improved[:, i], restart[i] = b2[i], m2[i], i2[:, i], r
        return best, margin, improved, restart


def compare(result, ref, x, atol=1e-12) -> None:
    best, margin, improved, restart = ref
    torch.testing.assert_close(result.x_adv, torch.from_numpy(best), rtol=0, atol=atol)
    np.testing.assert_array_equal(result.diagnostics["improved"], improved)
    np.testing.assert_array_equal(result.restart, restart)
    np.testing.assert_array_equal(result.success.numpy(), np.array(margin) < 0)
    np.testing.assert_allclose(
        result.loss.numpy(), np.minimum(-np.array(margin), 50.0), rtol=1e-12, atol=atol
    )
    assert result.x_adv.dtype == x.dtype and result.x_adv.shape == x.shape


#: The l2 update takes sqrt(eps^2 - ||delta||^2): where the budget is spent, that is the
#: square root of a rounding error (~1e-17), so points agree to ~1e-8, not to 1e-12.
L2_ATOL = 1e-7


# -- the whole attack against the reference --------------------------------------------------


@pytest.mark.parametrize(
    ("norm", "eps", "queries", "p_init", "seed", "restarts"),
    [
        ("linf", 0.08, 60, 0.8, 0, 1),
        ("linf", 0.05, 40, 0.5, 3, 2),
        ("l2", 0.5, 60, 0.8, 1, 1),
        ("l2", 0.35, 40, 0.5, 4, 2),
    ],
)
def test_square_equals_the_reference(norm, eps, queries, p_init, seed, restarts):
    model, x, y = problem(seed, 8)
    attack = Square(
        model, norm=norm, eps=eps, queries=queries, p_init=p_init, restarts=restarts, seed=seed
    )
    ref_model = RowLinear(seed).eval()
    ref = Reference(ref_model, norm, eps, queries, p_init)
    expected = ref.run(x, y, seed, restarts)
    result = attack.run(x, y, trace=False)
    compare(result, expected, x, atol=L2_ATOL if norm == "l2" else 1e-12)
    # The problem exercises the rule: proposals accepted and rejected, samples fooled and
    # not, and fooled samples leave the loop (NaN) before the last query.
    improved = expected[2]
    assert np.nansum(improved) > 0 and np.nansum(1 - improved) > 0
    succ = np.array(expected[1]) < 0
    assert succ.any() and not succ.all()
    assert np.isnan(improved[-1]).any()
    if restarts > 1:
        assert expected[3].any()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_queries_are_counted_per_sample(norm):
    """One query at the clean point, one at the start, one per step while still correct."""
    model, x, y = problem(2, 10, scale=1.5)
    y[:3] = (y[:3] + 1) % K  # three samples misclassified from the start
    eps = 0.06 if norm == "linf" else 0.4
    Square(model, norm=norm, eps=eps, queries=30, seed=2)(x, y)
    ref = Reference(RowLinear(2, 1.5).eval(), norm, eps, 30, 0.8)
    ref.run(x, y, 2)
    assert model.calls == ref.calls
    assert model.calls[0] == 10 and model.calls[1] == 7
    assert min(model.calls[2:]) < max(model.calls[2:])  # samples leave when fooled
    # run() adds one evaluation of the returned batch and changes nothing else.
    model.calls.clear()
    result = Square(model, norm=norm, eps=eps, queries=30, seed=2).run(x, y, trace=False)
    assert model.calls == [*ref.calls, 10]
    queried = (~np.isnan(result.diagnostics["improved"])).sum(axis=0)
    np.testing.assert_array_equal(queried[:3], 0)


def test_default_settings():
    """linf, 5000 queries, p_init 0.8, one restart, seed 0 (the default generator seed)."""
    model, x, y = problem(5, 4)
    attack = Square(model, eps=0.05)
    assert (attack.norm.name, attack.queries, attack.p_init, attack.restarts) == (
        "linf",
        5000,
        0.8,
        1,
    )
    assert attack.seed == 0 and attack.kappa == 50.0
    assert repr(attack) == "Square(norm='linf', eps=0.05, queries=5000, p_init=0.8, restarts=1)"
    assert repr(Square(model, norm="l2", eps=0.5, queries=7, p_init=0.3, restarts=2)) == (
        "Square(norm='l2', eps=0.5, queries=7, p_init=0.3, restarts=2)"
    )
    # With the default p_init and seed, the run is the reference's.
    short = Square(model, eps=0.05, queries=25)
    expected = Reference(RowLinear(5).eval(), "linf", 0.05, 25, 0.8).run(x, y, 0)
    compare(short.run(x, y, trace=False), expected, x)


@pytest.mark.parametrize(("norm", "p_init"), [("l2", 0.8), ("linf", 1.0)])
def test_start_and_update_on_other_image_sizes(norm, p_init):
    """Non-square images (H < W and H > W); the window side is capped by both sides."""
    for shape, seed in (((1, 4, 7), 6), ((3, 11, 8), 7)):
        model = RowLinear(0).eval()
        model.w = nn.Parameter(
            torch.randn(K, math.prod(shape), generator=torch.Generator().manual_seed(seed)).double()
        )
        g = torch.Generator().manual_seed(seed + 1)
        x = torch.rand(6, *shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            y = model(x).argmax(1)
        eps = 0.4 if norm == "l2" else 0.05
        attack = Square(model, norm=norm, eps=eps, queries=20, p_init=p_init, seed=seed)
        result = attack.run(x, y, trace=False)
        ref_model = RowLinear(0).eval()
        ref_model.w = model.w
        expected = Reference(ref_model, norm, eps, 20, p_init).run(x, y, seed)
        compare(result, expected, x, atol=L2_ATOL)


def test_l2_perturbation_has_norm_eps_before_clipping():
    """Interior points: the start and every kept point use the budget exactly."""
    model, _, _ = problem(8, 6)
    x = 0.3 + 0.4 * torch.rand(6, C, H, W, generator=torch.Generator().manual_seed(9)).double()
    with torch.no_grad():
        y = model(x).argmax(1)
    eps = 0.5
    x_adv = Square(model, norm="l2", eps=eps, queries=15, seed=1)(x, y)
    norms = (x_adv - x).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, eps), rtol=1e-12, atol=0)


def test_linf_start_and_windows_are_plus_minus_eps():
    model, x, _ = problem(10, 6)
    x = 0.2 + 0.6 * x  # interior: no clipping
    with torch.no_grad():
        y = model(x).argmax(1)
    eps = 0.1
    x_adv = Square(model, eps=eps, queries=20, seed=4)(x, y)
    delta = (x_adv - x).abs()
    torch.testing.assert_close(delta, torch.full_like(delta, eps), rtol=0, atol=1e-12)


def test_clean_misclassified_samples_are_returned_unchanged():
    model, x, y = problem(11, 5)
    y = (y + 1) % K
    for norm in ("linf", "l2"):
        result = Square(model, norm=norm, eps=0.3, queries=10).run(x, y, trace=False)
        assert torch.equal(result.x_adv, x)
        assert np.isnan(result.diagnostics["improved"]).all()
        assert bool(result.success.all())


# -- the schedule and the pattern --------------------------------------------------------------


@pytest.mark.parametrize(
    ("queries", "p_init"), [(10000, 0.8), (5000, 0.3), (137, 1.0), (20, 0.05), (519, 0.5)]
)
def test_p_schedule_equals_the_paper_and_torchattacks(queries, p_init):
    ta = torchattacks.Square(nn.Identity(), n_queries=queries, p_init=p_init)
    for i in range(queries):
        expected = ref_p(p_init, i, queries)
        assert p_schedule(p_init, i, queries) == expected, i
        assert ta.p_selection(i) == expected, i


def test_p_schedule_breakpoints_for_10000_queries():
    p = 0.64
    for i, divisor in [(0, 1), (10, 1), (11, 2), (50, 2), (51, 4), (200, 4), (201, 8), (500, 8),
                       (501, 16), (1000, 16), (1001, 32), (2000, 32), (2001, 64), (4000, 64),
                       (4001, 128), (6000, 128), (6001, 256), (8000, 256), (8001, 512),
                       (9999, 512)]:  # fmt: skip
        assert p_schedule(p, i, 10000) == p / divisor, i
    assert p_schedule(p, 1, 1000) == p / 1  # rescaled to query 10: still p_init
    assert p_schedule(p, 2, 1000) == p / 2  # rescaled to query 20
    assert Square(nn.Identity(), eps=0.1, queries=1000, p_init=p).p_schedule_at(15) == p / 4


@pytest.mark.parametrize(
    ("rows", "cols"), [(1, 1), (1, 4), (2, 5), (3, 3), (4, 7), (6, 6), (7, 3), (5, 2)]
)
def test_peak_rectangle_equals_the_papers_loop_and_torchattacks(rows, cols):
    ours = _peak(rows, cols, dtype=torch.float64, device=torch.device("cpu"))
    np.testing.assert_allclose(ours.numpy(), ref_rectangle(rows, cols), rtol=1e-14)
    ta = torchattacks.Square(nn.Identity())
    np.testing.assert_allclose(ours.numpy(), ta.eta_rectangles(rows, cols).double(), atol=1e-6)
    empty = _peak(0, cols, dtype=torch.float64, device=torch.device("cpu"))
    assert empty.shape == (0, cols) and empty.dtype == torch.float64


@pytest.mark.parametrize("side", [1, 2, 3, 4, 5, 8])
def test_l2_pattern_equals_the_paper_and_draws_its_transposition(side):
    seen = set()
    ta = torchattacks.Square(nn.Identity())
    for seed in range(8):
        gen = torch.Generator().manual_seed(seed)
        ours = l2_pattern(side, gen, dtype=torch.float64)
        expected = ref_pattern(side, torch.Generator().manual_seed(seed))
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-14, atol=1e-15)
        assert ours.dtype == torch.float64 and ours.is_contiguous()
        theirs = ta.eta(side).double().numpy()
        assert np.allclose(ours.numpy(), theirs, atol=1e-6) or np.allclose(
            ours.numpy(), theirs.T, atol=1e-6
        )
        seen.add(bool(np.allclose(expected, ref_eta(side))))
    if side > 1:
        assert seen == {True, False}  # both orientations occur
    assert l2_pattern(side, torch.Generator()).dtype == torch.float32


@pytest.mark.parametrize(
    ("draw", "transposed"),
    [(0.0, True), (float(np.nextafter(np.float32(0.5), np.float32(0))), True), (0.5, False)],
)
def test_l2_pattern_is_transposed_with_probability_exactly_one_half(monkeypatch, draw, transposed):
    """torch.rand draws u from the 2^24 float32 values k / 2^24 in [0, 1); exactly half of
    them lie below 0.5, so the pattern is fair only if u = 0.5 itself keeps the orientation."""
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.tensor(draw))
    ours = l2_pattern(5, torch.Generator(), dtype=torch.float64).numpy()
    np.testing.assert_allclose(ours, ref_eta(5).T if transposed else ref_eta(5), atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_l2_patterns_are_built_in_the_input_dtype(monkeypatch, dtype):
    """A float32 attack must not build its patterns in float64 and round them afterwards
    (float64 is slow on GPUs, and the rounding moves the proposal by an ulp)."""
    import krylovadv.torch.attacks.square as square_module

    seen = []

    def spy(side, generator, *, dtype=torch.float32, device="cpu"):
        seen.append(dtype)
        return l2_pattern(side, generator, dtype=dtype, device=device)

    monkeypatch.setattr(square_module, "l2_pattern", spy)
    model, x, y = problem(seed=0, batch=2)
    model, x = model.to(dtype), x.to(dtype)
    Square(model, norm="l2", eps=0.5, queries=3, seed=0)(x, y)
    assert len(seen) > 1 and set(seen) == {dtype}


@pytest.mark.parametrize("side", [0, -1, 2.0, True, "3"])
def test_l2_pattern_rejects_bad_sides(side):
    with pytest.raises(ValueError, match="side"):
        l2_pattern(side, torch.Generator())


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"norm": "l1"}, "norm"),
        ({"p_init": 0.0}, "p_init"),
        ({"p_init": 1.5}, "p_init"),
        ({"p_init": -0.1}, "p_init"),
        ({"p_init": True}, "p_init"),
        ({"p_init": "0.5"}, "p_init"),
        ({"queries": 0}, "steps"),
        ({"restarts": 0}, "restarts"),
        ({"eps": -1.0}, "eps"),
    ],
)
def test_bad_arguments_are_named(kwargs, argument):
    model = RowLinear(0)
    with pytest.raises(ValueError, match=argument):
        Square(model, **{"eps": 0.1, **kwargs})


def test_p_init_boundaries_and_types():
    model = RowLinear(0)
    assert Square(model, eps=0.1, p_init=1).p_init == 1.0
    assert isinstance(Square(model, eps=0.1, p_init=1).p_init, float)
    assert Square(model, eps=0.1, p_init=1e-9).p_init == 1e-9


@pytest.mark.parametrize("shape", [(3, 72), (3, 2, 1, 36), (3, 2, 36, 1), (3, 2, 3, 3, 4)])
def test_inputs_that_are_not_images_are_rejected(shape):
    x = torch.rand(shape, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x must be images .*H, W >= 2"):
        Square(RowLinear(0), eps=0.1, queries=3)(x, torch.zeros(3, dtype=torch.long))


def test_two_by_two_images_work_for_both_norms():
    model = RowLinear(0)
    model.w = nn.Parameter(torch.randn(K, 8, generator=torch.Generator().manual_seed(1)).double())
    x = torch.rand(4, 2, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    for norm, eps in (("linf", 0.2), ("l2", 0.5)):
        result = Square(model, norm=norm, eps=eps, queries=12, seed=3).run(x, y, trace=False)
        ref_model = RowLinear(0).eval()
        ref_model.w = model.w
        expected = Reference(ref_model, norm, eps, 12, 0.8).run(x, y, 3)
        compare(result, expected, x, atol=L2_ATOL)


# -- edge cases of the loop, the trace, the settings -----------------------------------------


def test_a_tied_margin_counts_as_fooled_as_in_the_paper():
    """Margin exactly 0 (the true class ties with another): not attacked, one query."""
    model, x, _ = problem(12, 4)
    with torch.no_grad():
        model.w[1] = model.w[0]
        model.b[1] = model.b[0]
        model.b[2:] = -1e3  # classes 0 and 1 always lead, tied
    y = torch.zeros(4, dtype=torch.long)
    model.calls.clear()
    result = Square(model, eps=0.1, queries=5).run(x, y, trace=False)
    assert model.calls == [4, 4]  # the clean query and the final evaluation only
    assert torch.equal(result.x_adv, x)
    assert np.isnan(result.diagnostics["improved"]).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_single_correct_sample_is_attacked(norm):
    model, x, y = problem(13, 5)
    y[1:] = (y[1:] + 1) % K  # only sample 0 is correctly classified
    eps = 0.08 if norm == "linf" else 0.5
    result = Square(model, norm=norm, eps=eps, queries=10, seed=1).run(x, y, trace=False)
    expected = Reference(RowLinear(13).eval(), norm, eps, 10, 0.8).run(x, y, 1)
    compare(result, expected, x, atol=L2_ATOL)
    assert not torch.equal(result.x_adv[0], x[0])
    model.calls.clear()
    Square(model, norm=norm, eps=eps, queries=10)(x[1:], y[1:])
    assert model.calls == [4]  # nobody to attack: no query on an empty batch


def test_run_with_trace_records_the_returned_point_only():
    """Square has no per-step gradient: the trace holds row T (the returned point)."""
    model, x, y = problem(14, 5)
    result = Square(model, eps=0.05, queries=8).run(x, y, trace=True)
    trace = result.trace
    assert trace is not None and len(trace) == 9
    assert np.isnan(trace.loss[:-1]).all() and np.isnan(trace.grad_norm[:-1]).all()
    np.testing.assert_allclose(trace.loss[-1], result.loss.numpy(), rtol=1e-14)
    np.testing.assert_array_equal(trace.success[-1], result.success.numpy())
    # The gradient norm of the CW loss min(max_j z_j - z_y, 50) at the returned point.
    xr = result.x_adv.clone().requires_grad_(True)
    z = model(xr)
    true = z.gather(1, y[:, None])[:, 0]
    other = z.scatter(1, y[:, None], float("-inf")).amax(1)
    (g,) = torch.autograd.grad((other - true).clamp_max(50.0).sum(), xr)
    np.testing.assert_allclose(trace.grad_norm[-1], g.flatten(1).norm(dim=1).numpy(), rtol=1e-12)


def test_square_takes_no_gradient_steps():
    """No step size and no PGD random start: the base loop's settings are off."""
    attack = Square(RowLinear(0), eps=0.3, queries=10)
    assert attack.alpha == 0.0 and attack.random_start is False and attack.early_stop is False


def test_a_norm_instance_other_than_linf_or_l2_is_refused():
    from krylovadv.torch.attacks.norms import LinfNorm

    class Other(LinfNorm):
        name = "l1"

    with pytest.raises(ValueError) as info:
        Square(RowLinear(0), norm=Other(), eps=0.1)
    assert str(info.value) == (
        "norm must be 'linf' or 'l2' for Square; got 'l1' (pass one of the two)."
    )


def test_l2_start_and_proposal_on_a_larger_image_to_rounding():
    """Blocks of side 2 (10 x 10 image); a budget larger than the grid's norm."""
    x = torch.full((3, 1, 10, 10), 0.5, dtype=torch.float64)
    ref = Reference(None, "l2", 6.0, 100, 0.8)
    attack = Square(RowLinear(0), norm="l2", eps=6.0, queries=100)
    ours = attack._l2_start(x, torch.Generator().manual_seed(3))
    theirs = ref.l2_start(x.numpy(), torch.Generator().manual_seed(3))
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-14)
    # The 25 unit blocks have norm 5 < eps: the start is scaled up to eps (before clipping).
    assert not np.allclose(theirs, np.clip(0.5 + (theirs - 0.5) * 5 / 6, 0, 1))
    # A proposal from a perturbation of norm 0.3 < eps = 0.5 (spare budget, no clipping).
    ref, attack = (
        Reference(None, "l2", 0.5, 100, 0.8),
        Square(RowLinear(0), norm="l2", eps=0.5, queries=100),
    )
    delta = 0.03 * torch.randn(3, 1, 10, 10, generator=torch.Generator().manual_seed(4)).double()
    for q in (0, 30):
        ours = attack._l2_proposal(x, delta, q, torch.Generator().manual_seed(q))
        theirs = ref.l2_proposal(x.numpy(), delta.numpy(), q, torch.Generator().manual_seed(q))
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-14)
