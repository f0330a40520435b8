"""Mutation-killing tests for the solvers' per-sample state (issue 8, item 2).

``krylovadv._symmetric`` (input checks, records and results shared by :func:`krylovadv.cg`
and :func:`krylovadv.minres`) and ``krylovadv._gmres_state`` (GMRES's per-sample
bookkeeping).  They kill the mutants that the behavioural suite and
``tests/test_testing_mutation_internals.py`` let survive (``python tools/run_mutation.py
_symmetric`` / ``_gmres_state``; the equivalent ones are listed with their reasons in
docs/dev/mutation-reports/solver-state.md).

References are independent of the code: exact hand-computed values (norms of rows whose
squares underflow, residuals of diagonal systems), scipy's ``cg``/``minres`` on the same
problems (each sample of a batch against scipy solving it alone), the documented threshold
(``row_norms`` trusts a dot product only above :math:`\\sqrt{\\text{tiny}}/\\varepsilon`),
and torch's ``meta`` device standing in for a GPU wherever only the device of an index
array is at stake.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from array_api_compat import array_namespace

import krylovadv
from krylovadv import _symmetric
from krylovadv._gmres_state import Active, SampleState
from krylovadv._symmetric import (
    STAGNATION_RESTARTS,
    Bookkeeping,
    active_index,
    apply,
    dots,
    finish,
    initial_residual,
    precondition,
    row_norms,
    setup_problem,
    true_residual,
)
from krylovadv.operators import DenseOperator, FunctionOperator
from krylovadv.status import SolverStatus

TXP = array_namespace(torch.zeros(1))  # the array-API namespace the solvers use for torch
META = torch.device("meta")  # a device other than the CPU, with no GPU needed

NOT_STARTED = int(SolverStatus.NOT_STARTED)
CONVERGED = int(SolverStatus.CONVERGED)
NON_FINITE = int(SolverStatus.NON_FINITE)


# ---------------------------------------------------------------- _gmres_state


def test_active_of_puts_the_index_on_the_operators_device():
    active = Active.of(TXP, np.array([True, False, True]), META)
    assert active.idx.device.type == "meta"
    assert active.idx.shape == (2,) and active.idx.dtype == torch.int64
    assert active.idx_np.tolist() == [0, 2]
    # every sample taking part: nothing to index, whatever the device
    assert Active.of(TXP, np.ones(2, bool), META).idx is None


def test_sample_state_masks_are_boolean_and_codes_integer():
    s = SampleState.new(4)
    # numpy's bool and int64 exactly: the masks are combined with ~ and &, and the codes
    # compared with SolverStatus values (a float "mask" of zeros would index nothing).
    assert s.running.dtype == np.bool_ and s.stop_requested.dtype == np.bool_
    assert s.status.dtype == np.int64
    s.running[:] = True
    assert (~s.running).tolist() == [False] * 4
    s.stop(np.array([1, 3]), SolverStatus.STAGNATION)
    assert s.running.tolist() == [True, False, True, False]
    assert s.running.dtype == np.bool_
    stagnation = int(SolverStatus.STAGNATION)
    assert s.status.tolist() == [NOT_STARTED, stagnation, NOT_STARTED, stagnation]


# ---------------------------------------------------------------- row_norms


class _Spy:
    """Counts the calls of the scaled (slow) norm behind ``row_norms``."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = _symmetric.batched_norm

        def spy(xp, a):
            self.calls += 1
            return original(xp, a)

        monkeypatch.setattr(_symmetric, "batched_norm", spy)


def test_row_norms_takes_the_dot_product_only_when_it_is_safe(monkeypatch):
    spy = _Spy(monkeypatch)
    f64 = np.finfo(np.float64)
    # The documented threshold: every norm above sqrt(tiny)/eps (or a row of zeros).
    threshold = np.sqrt(f64.smallest_normal) / f64.eps
    above = np.nextafter(threshold, np.inf)

    def norms(a):
        before = spy.calls
        got = row_norms(np, a)
        assert got.dtype == np.float64
        return got, spy.calls - before

    got, slow = norms(np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]]))
    assert got.tolist() == [5.0, 0.0, 1.0] and slow == 0  # a zero row is trusted
    got, slow = norms(np.array([[0.0, 0.0]]))
    assert got.tolist() == [0.0] and slow == 0
    got, slow = norms(np.array([[above, 0.0]]))
    assert got.tolist() == [above] and slow == 0
    got, slow = norms(np.array([[threshold, 0.0]]))  # not above: the scaled norm
    assert got.tolist() == [threshold] and slow == 1
    got, slow = norms(np.array([[1e-150, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(got, [1e-150, 2**0.5], rtol=1e-15)
    assert slow == 1
    got, slow = norms(np.array([[1.0, 1.0], [0.0, 0.0], [1e300, 1e300]]))
    np.testing.assert_allclose(got, [2**0.5, 0.0, 2**0.5 * 1e300], rtol=1e-15)
    assert slow == 1
    # complex rows: |3i|^2 + |4|^2, through the conjugated dot product
    got, slow = norms(np.array([[3j, 4.0], [0.0, 0.0]]))
    assert got.tolist() == [5.0, 0.0] and slow == 0
    # torch rows: the scaled norm
    before = spy.calls
    t = row_norms(TXP, torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64))
    assert type(t) is np.ndarray and t.dtype == np.float64 and t.tolist() == [5.0, 0.0]
    assert spy.calls == before + 1


def test_row_norms_where_squares_lose_accuracy():
    # Squares of 1e-160 are subnormal (about 11 significant bits left): the dot product
    # is 5e-6 off, so a norm below sqrt(tiny)/eps must be rescaled.
    a = np.array([[1e-160, 1e-160], [1e-160, 0.0], [3e-200, 4e-200]])
    np.testing.assert_allclose(row_norms(np, a), [2**0.5 * 1e-160, 1e-160, 5e-200], rtol=1e-15)
    # float32: its own threshold sqrt(tiny32)/eps32 ~ 9e-13, not float64's ~ 7e-139
    # (squares of 1e-22 in float32 are 2e-44, a subnormal with about 4 bits).
    f32 = np.array([[1e-22, 1e-22], [3.0, 4.0]], dtype=np.float32)
    got = row_norms(np, f32)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [2**0.5 * float(np.float32(1e-22)), 5.0], rtol=1e-6)
    c64 = np.array([[1e-22j, 1e-22]], dtype=np.complex64)
    np.testing.assert_allclose(row_norms(np, c64), [2**0.5 * float(np.float32(1e-22))], rtol=1e-6)
    # a row whose squares all underflow to 0 next to a true zero row
    z = np.array([[0.0, 0.0], [1e-170, 1e-170], [2.0, 0.0]])
    np.testing.assert_allclose(row_norms(np, z), [0.0, 2**0.5 * 1e-170, 2.0], rtol=1e-15)
    # overflowing squares and non-finite entries
    np.testing.assert_allclose(row_norms(np, np.array([[1e200, 0.0], [1.0, 0.0]])), [1e200, 1.0])
    got = row_norms(np, np.array([[np.inf, 1.0], [np.nan, 1.0], [1.0, 0.0]]))
    assert got[0] == np.inf and np.isnan(got[1]) and got[2] == 1.0


# ---------------------------------------------------------------- dots


def test_dots_of_numpy_rows_stay_off_the_backend_dispatch(monkeypatch):
    # The solvers take these products every step: two numpy arrays are one einsum,
    # without the array-API dispatch; other arrays go through it.
    calls = []
    original = _symmetric.batched_dot

    def spy(xp, a, b):
        calls.append(type(a))
        return original(xp, a, b)

    monkeypatch.setattr(_symmetric, "batched_dot", spy)
    a = np.array([[1.0, 2.0], [3.0, -1.0]])
    assert dots(np, a, a).tolist() == [5.0, 10.0]
    assert dots(np, a * 1j, a).tolist() == [0.0, 0.0]  # Re(-i |a|^2) = 0
    assert calls == []
    t = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    assert dots(TXP, t, t).tolist() == [5.0]
    assert calls == [torch.Tensor]


def test_dots_mixed_real_and_complex_rows_without_warnings():
    a = np.array([[1.0 + 2.0j, 3.0], [0.5j, -1.0]])
    b = np.array([[2.0, 1.0], [4.0, 2.0]])
    with warnings.catch_warnings():
        # a complex einsum cast to float64 would raise numpy's ComplexWarning
        warnings.simplefilter("error")
        ab = dots(np, a, b)
        ba = dots(np, b, a)
    # Re(conj(a) . b) by hand: (1 - 2i) 2 + 3 = 5 - 4i; (-0.5i) 4 - 2 = -2 - 2i
    assert ab.dtype == np.float64 and ab.tolist() == [5.0, -2.0]
    # Re(b . a): 2 (1 + 2i) + 3 = 5 + 4i; 2i - 2
    assert ba.tolist() == [5.0, -2.0]
    # float32 rows come back as float64, and so do torch rows
    a32 = np.array([[0.1, 0.2]], dtype=np.float32)
    assert dots(np, a32, a32).dtype == np.float64
    np.testing.assert_allclose(dots(np, a32, a32), [0.05], rtol=1e-6)
    t = dots(TXP, torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]]))
    assert type(t) is np.ndarray and t.dtype == np.float64 and t.tolist() == [11.0]


def test_complex_dots_of_torch_rows_keep_the_imaginary_part():
    # (minres's symmetry check compares v^H A u with conj(u^H A v) this way)
    a = torch.tensor([[1.0 + 2.0j, 3.0], [0.5j, -1.0]], dtype=torch.complex64)
    b = torch.tensor([[2.0, 1.0j], [4.0, 2.0]], dtype=torch.complex64)
    got = _symmetric.complex_dots(TXP, a, b)
    assert type(got) is np.ndarray and got.dtype == np.complex128
    # conj(a) . b by hand: (1 - 2i) 2 + 3i = 2 - i; (-0.5i) 4 - 2 = -2 - 2i
    assert got.tolist() == [2.0 - 1.0j, -2.0 - 2.0j]


# ---------------------------------------------------------------- apply, rows, indices


class _Recorder:
    """A vectorized operator diag(1, 2, 3) per sample, scaled by (sample + 1)."""

    def __init__(self, batch_size):
        self.seen = []
        self.op = FunctionOperator(
            self,
            (3, 3),
            batch_size=batch_size,
            vectorized=True,
            pass_indices=True,
        )

    def __call__(self, x, indices):
        idx = np.asarray(indices)
        self.seen.append(idx.tolist())
        return x * np.array([1.0, 2.0, 3.0]) * (idx[:, None] + 1.0)


def test_apply_hands_sample_numbers_only_to_a_batched_operator():
    x = np.ones((2, 3))
    batched = _Recorder(batch_size=4)
    y = apply(batched.op, x, np.array([3, 1]))
    assert batched.seen == [[3, 1]]
    np.testing.assert_array_equal(y, [[4.0, 8.0, 12.0], [2.0, 4.0, 6.0]])
    # a shared operator is given its rows as just k vectors (as gmres does)
    shared = _Recorder(batch_size=None)
    y = apply(shared.op, x, np.array([3, 1]))
    assert shared.seen == [[0, 1]]
    np.testing.assert_array_equal(y, [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])


def test_active_index_and_true_residual_on_a_batched_operator():
    idx_np, idx = active_index(TXP, np.array([False, True, True]), META)
    assert idx_np.tolist() == [1, 2] and idx.device.type == "meta"
    assert active_index(TXP, np.ones(3, bool), META)[1] is None
    A = np.stack([np.diag([1.0, 2.0]), np.diag([3.0, 4.0]), np.diag([5.0, 6.0])])
    b = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    p = setup_problem(A, b, None, None, 1e-5, 0.0)
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    r, norms = true_residual(p, x, np.array([1, 2]), np.array([1, 2]))
    # b_1 - A_1 x_1 = (2 - 3, 2 - 4); b_2 - A_2 x_2 = (3, 3 - 6)
    np.testing.assert_array_equal(r, [[-1.0, -2.0], [3.0, -3.0]])
    np.testing.assert_allclose(norms, [5**0.5, 18**0.5], rtol=1e-15)
    r, norms = true_residual(p, x, np.arange(3), None)
    np.testing.assert_array_equal(r, [[0.0, 1.0], [-1.0, -2.0], [3.0, -3.0]])
    assert norms.dtype == np.float64


def test_precondition_applies_a_batched_M_to_the_chosen_samples():
    A = np.eye(2)
    M = np.stack([np.diag([2.0, 1.0]), np.diag([3.0, 1.0]), np.diag([4.0, 1.0])])
    b = np.ones((3, 2))
    p = setup_problem(A, b, None, M, 1e-5, 0.0)
    z = precondition(p, np.array([[1.0, 1.0]]), np.array([2]))
    np.testing.assert_array_equal(z, [[4.0, 1.0]])
    z = precondition(p, b, None)
    np.testing.assert_array_equal(z, [[2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])


# ---------------------------------------------------------------- setup_problem


def test_setup_problem_on_torch_keeps_its_namespace_and_exact_targets():
    A = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))
    b = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    p = setup_problem(A, b, None, None, 0.5, 1.0)
    assert p.batch == 2 and p.n == 2 and p.dtype == torch.float64
    assert isinstance(p.b, torch.Tensor)
    assert p.b_norm.tolist() == [5.0, 0.0]
    assert p.tol.tolist() == [2.5, 1.0]  # max(rtol ||b||, atol)


# ---------------------------------------------------------------- Bookkeeping


def test_bookkeeping_counts_are_integers_and_record_is_strict():
    book = Bookkeeping.start(3, 1e-16)
    for name in ("status", "iterations", "matvecs", "stalled"):
        assert getattr(book, name).dtype == np.int64, name
    assert book.residual_norm.dtype == np.float64 and book.best.dtype == np.float64
    book.matvecs[0] += 1
    book.stalled[1] += 2
    assert book.matvecs.tolist() == [1, 0, 0] and book.stalled.tolist() == [0, 2, 0]
    book.record(np.array([2]), [0.125])
    assert book.history == [[], [], [0.125]]
    # one value per sample, or a bookkeeping error (zip's strict mode)
    with pytest.raises(ValueError):
        book.record(np.array([0, 1]), np.array([1.0]))
    with pytest.raises(ValueError):
        book.record(np.array([0]), np.array([1.0, 2.0]))


def test_judge_and_stagnant_at_the_margin_exactly():
    book = Bookkeeping.start(3, 2.0**-52)
    margin = 1.0 - 2.0**-26  # 1 - sqrt(eps), exact in binary
    assert book.margin == margin
    # broke, exactly at margin * best: no progress, so BREAKDOWN
    book.best[0] = 4.0
    assert book.judge(0, margin * 4.0, 1.0, broke=True) is False
    assert book.status[0] == int(SolverStatus.BREAKDOWN)
    # a restart ending exactly at margin * best is no progress either: counted, best kept
    book.best[1] = 4.0
    assert book.judge(1, margin * 4.0, 1.0) is True
    assert book.stalled[1] == 1 and book.best[1] == 4.0
    # just below is progress: best updated, count reset
    below = np.nextafter(margin * 4.0, 0.0)
    assert book.judge(1, below, 1.0) is True
    assert book.stalled[1] == 0 and book.best[1] == below
    # the count reaches STAGNATION_RESTARTS one restart at a time
    for k in range(1, STAGNATION_RESTARTS):
        assert book.stagnant(2, np.inf) is False and book.stalled[2] == k
    assert book.stagnant(2, np.inf) is True and book.stalled[2] == STAGNATION_RESTARTS


# ---------------------------------------------------------------- initial_residual


def test_initial_residual_leaves_b_alone_and_counts_products_on_top():
    A = np.diag([1.0, 2.0])
    b = np.array([[1.0, 2.0], [3.0, 4.0]])
    b_before = b.copy()
    x0 = np.array([[1.0, 1.0], [0.0, 0.0]])
    p = setup_problem(A, b, x0, None, 1e-5, 0.0)
    b_problem = p.b.copy()
    book = Bookkeeping.start(2, 2.0**-52)
    book.matvecs[:] = [2, 2]  # (minres's symmetry check spends two products first)
    r = initial_residual(p, book)
    assert book.matvecs.tolist() == [3, 2]
    np.testing.assert_array_equal(r, [[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_array_equal(p.b, b_problem)
    np.testing.assert_array_equal(b, b_before)
    # r is a new array: writing it leaves b alone
    r[...] = -7.0
    np.testing.assert_array_equal(p.b, b_problem)


def test_initial_residual_converged_at_the_target_exactly():
    # rtol = 1: the target is ||b|| itself, and r_0 = b meets it (<=), as in scipy
    A = np.diag([2.0, 3.0])
    b = np.array([[3.0, 4.0], [1.0, 0.0]])
    p = setup_problem(A, b, None, None, 1.0, 0.0)
    book = Bookkeeping.start(2, 2.0**-52)
    initial_residual(p, book)
    assert book.status.tolist() == [CONVERGED, CONVERGED]
    assert book.residual_norm.tolist() == [5.0, 1.0] and book.matvecs.tolist() == [0, 0]
    # a finite x0 next to a non-finite one: only the latter is NON_FINITE
    # (A x0 overflows for sample 1: 2 * 1e308 = inf)
    p = setup_problem(A, b, np.array([[1.0, 1.0], [1e308, 0.0]]), None, 1e-5, 0.0)
    book = Bookkeeping.start(2, 2.0**-52)
    with np.errstate(over="ignore"):
        initial_residual(p, book)
    assert book.status.tolist() == [NOT_STARTED, NON_FINITE]
    assert book.residual_norm[0] == 2.0**0.5 and book.matvecs.tolist() == [1, 1]


@pytest.mark.parametrize("solver", ["cg", "minres"])
def test_solvers_keep_the_callers_arrays_and_converge_at_the_target(solver):
    rng = np.random.default_rng(11)
    Q = rng.standard_normal((5, 5))
    A = Q @ Q.T + 5 * np.eye(5)
    b = rng.standard_normal((3, 5))
    x0 = rng.standard_normal((3, 5))
    x0[1] = 0.0
    b_before, x0_before = b.copy(), x0.copy()
    solve = getattr(krylovadv, solver)
    res = solve(A, b, x0=x0, rtol=1e-10, atol=0.0)
    np.testing.assert_array_equal(b, b_before)
    np.testing.assert_array_equal(x0, x0_before)
    ref = getattr(spla, solver)
    for i in range(3):
        kwargs = {"atol": 0.0} if solver == "cg" else {}  # (scipy's minres has no atol)
        xi, info = ref(A, b[i], x0=x0[i], rtol=1e-10, **kwargs)
        assert info == 0
        np.testing.assert_allclose(res.x[i], xi, rtol=1e-7, atol=1e-9)
        # the reported residual is the true one of the returned x
        true = np.linalg.norm(b[i] - A @ res.x[i])
        np.testing.assert_allclose(res.residual_norm[i], true, rtol=1e-6, atol=1e-14)
    assert res.status.tolist() == [CONVERGED] * 3
    # rtol = 1: converged before any step, x = x0, one product where x0 is nonzero
    res = solve(A, b, x0=np.zeros_like(b), rtol=1.0, atol=0.0)
    assert res.iterations.tolist() == [0, 0, 0] and res.matvecs.tolist() == [0, 0, 0]
    np.testing.assert_array_equal(res.x, np.zeros_like(b))
    np.testing.assert_allclose(res.residual_norm, np.linalg.norm(b, axis=1), rtol=1e-15)


def test_minres_counts_the_symmetry_check_and_the_initial_product():
    A = np.diag([1.0, 2.0, 3.0])
    b = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    x0 = np.array([[1.0, 0.5, 1.0 / 3.0], [0.0, 0.0, 0.0]])  # sample 0: exact already
    plain = krylovadv.minres(A, b, x0=x0, rtol=1e-12, atol=0.0)
    checked = krylovadv.minres(A, b, x0=x0, rtol=1e-12, atol=0.0, check=True)
    # the check costs two products per sample on top of the solve
    assert (checked.matvecs - plain.matvecs).tolist() == [2, 2]
    assert plain.status[0] == CONVERGED and plain.iterations[0] == 0
    assert plain.matvecs[0] == 1  # r_0 = b - A x_0 only


def _meta_problem(x0_nonzero, b_norm):
    """A problem on torch's meta device (shapes and devices, no values): a stand-in GPU."""
    B = len(b_norm)
    ones = torch.ones((B, 2), dtype=torch.float64, device=META)
    return _symmetric.Problem(
        xp=TXP,
        op=DenseOperator(torch.eye(2, dtype=torch.float64, device=META)),
        precond=None,
        b=ones,
        x=ones.clone(),
        x0_nonzero=np.array(x0_nonzero),
        single=False,
        b_norm=np.array(b_norm),
        tol=np.full(B, 0.5),
    )


def test_index_arrays_stay_on_the_problems_device(monkeypatch):
    # On a GPU, a host (CPU) mask or index array mixed with device tensors is an error;
    # the meta device shows the same (a meta tensor holds no values, so the true
    # residual, which takes norms on the host, is replaced by a probe of its arguments).
    devices = []

    def probe(problem, x, idx_np, idx):
        devices.append(idx.device.type)
        # (idx_np is not read: true_residual itself works from the device index alone)
        return TXP.take(x, idx, axis=0), np.ones(idx.shape[0])

    monkeypatch.setattr(_symmetric, "true_residual", probe)
    p = _meta_problem([True, False, False], [1.0, 0.0, 1.0])
    book = Bookkeeping.start(3, 2.0**-52)
    r = initial_residual(p, book)  # the b = 0 sample's x is zeroed on the device
    assert r.device.type == "meta" and p.x.device.type == "meta"
    assert devices == ["meta"]
    assert book.matvecs.tolist() == [1, 0, 0]
    assert book.status.tolist() == [NOT_STARTED, CONVERGED, NOT_STARTED]
    finish(p, book, p.x, np.array([True, False, True]))
    assert devices == ["meta", "meta"] and book.matvecs.tolist() == [1, 1, 0]


# ---------------------------------------------------------------- finish


def test_finish_adds_one_product_to_the_count_so_far():
    A = np.diag([1.0, 2.0])
    b = np.array([[1.0, 2.0], [3.0, 4.0]])
    p = setup_problem(A, b, None, None, 1e-5, 0.0)
    book = Bookkeeping.start(2, 2.0**-52)
    book.matvecs[:] = [5, 6]
    book.status[:] = [CONVERGED, int(SolverStatus.MAX_ITERATIONS)]
    x = np.array([[1.0, 1.0], [2.0, 2.0]])
    out = finish(p, book, x, np.array([False, False]))
    assert out["matvecs"].tolist() == [6, 7]
    assert out["residual_norm"].tolist() == [0.0, 1.0]  # b - A x = (0, 0), (1, 0)
    assert out["converged"].tolist() == [True, False]
