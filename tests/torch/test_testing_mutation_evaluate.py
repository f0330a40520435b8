"""evaluate(): exact bookkeeping on scripted attacks, threat-model thresholds, rendering.

Kills the mutants of ``krylovadv/torch/evaluate.py`` that the behavioural tests let survive
(``python tools/run_mutation.py torch/evaluate``; equivalent ones listed in
docs/dev/mutation-reports/torch-evaluate.md).  The model's class is the larger of the first
two pixels of a 1 x 1 x 4 image; the third pixel is the sample's identity.  A *scripted*
attack does, per sample, what its plan says (leave it, flip it inside or outside the ball,
leave [0, 1], return NaN), records the samples of each batch and calls the model a set
number of times, so every count of the report has an exact expected value, worked out here.
"""

from __future__ import annotations

import itertools
import json
import math
import types

import numpy as np
import pytest
import torch
from torch import nn

from krylovadv.data import ImageData
from krylovadv.torch.evaluate import (
    AttackRecord,
    EvaluationReport,
    check_adversarial,
    evaluate,
    wilson_interval,
)
from krylovadv.torch.interrupts import RunInterrupted

N = 12


class TwoPixel(nn.Module):
    """Logits ``(p0, p1, 0.5 p2)``: class 0 or 1 by the larger of the first two pixels."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        w = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0.5, 0]], dtype=dtype)
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T


def problem(dtype=torch.float32):
    """Twelve samples; the last two are labelled wrongly (class 2)."""
    x = torch.zeros(N, 1, 1, 4, dtype=dtype)
    for i in range(N):
        top = i % 2
        x[i, 0, 0, top], x[i, 0, 0, 1 - top] = 0.55, 0.45
        x[i, 0, 0, 2] = 0.01 * (i + 1)  # identity
        x[i, 0, 0, 3] = 0.98
    y = torch.tensor([i % 2 for i in range(N)])
    y[-2:] = 2
    return x, y


def ident(row: torch.Tensor) -> int:
    return round(float(row.flatten()[2]) * 100) - 1


class Scripted:
    """An attack that follows a per-sample plan; ``norm`` and ``eps`` as an attack's."""

    def __init__(
        self,
        model,
        plan: dict[int, str],
        *,
        eps=0.1,
        norm="linf",
        calls=2,
        name=None,
        stop=-1,
        keyword=False,
    ):
        self.model, self.plan, self.eps, self.norm, self.calls = model, plan, eps, norm, calls
        self.keyword = keyword  # call the model as model(x=...)
        # Private (underscore): not part of the attack's fingerprint in a progress file.
        self._seen: list[list[int]] = []
        self._dtypes: list[torch.dtype] = []
        self._label_dtypes: list[torch.dtype] = []
        self._stop = stop  # raise KeyboardInterrupt on this call (an interrupted run)
        if name is not None:
            self.name = name

    @property
    def seen(self) -> list[list[int]]:
        return self._seen

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if len(self._seen) == self._stop:
            self._seen.append([])
            raise KeyboardInterrupt
        ids = [ident(r) for r in x]
        self._seen.append(ids)
        self._dtypes.append(x.dtype)
        self._label_dtypes.append(y.dtype)
        for _ in range(self.calls):
            if self.keyword:
                self.model(x=x)
            else:
                self.model(x)
        out = x.clone()
        for row, i in enumerate(ids):
            action = self.plan.get(i, "none")
            top = int(x[row, 0, 0, :2].argmax())
            if action in ("flip", "far"):
                shift = 0.06 if action == "flip" else 0.3
                out[row, 0, 0, top] -= shift
                out[row, 0, 0, 1 - top] += shift
            elif action == "range":  # out of [0, 1], in the ball, still correct
                out[row, 0, 0, 3] = 1.03
            elif action == "range-flip":  # out of [0, 1] and misclassified
                out[row, 0, 0, 3] = 1.03
                out[row, 0, 0, top] -= 0.06
                out[row, 0, 0, 1 - top] += 0.06
            elif action == "nan":
                out[row, 0, 0, 0] = float("nan")
        return out


def plans():
    a = {0: "flip", 1: "far", 2: "range", 3: "range-flip", 4: "nan", 5: "flip", 10: "flip"}
    b = {0: "flip", 1: "flip", 2: "flip", 6: "flip", 7: "nan", 11: "flip"}
    return a, b


def test_cascade_bookkeeping_is_exact():
    model = TwoPixel()
    x, y = problem()
    pa, pb = plans()
    A, B = Scripted(model, pa, calls=2), Scripted(model, pb, calls=3)
    report = evaluate(model, (x, y), {"A": A, "B": B}, batch_size=4, cascade=True)
    assert (report.total, report.clean_correct, report.cascade) == (N, 10, True)
    # A attacks the 10 clean-correct samples, in order, 4 per batch.
    assert A.seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    ra, rb = report.attacks
    assert (ra.name, ra.norm, ra.eps) == ("A", "linf", 0.1)
    assert (ra.attacked, ra.broken, ra.invalid) == (10, 2, 4)  # broken: 0 and 5
    # NaN (sample 4) also fails the range and the ball tests.
    assert ra.violations == {"non_finite": 1, "out_of_range": 3, "out_of_ball": 2}
    assert ra.forward_samples == 2 * 10
    robust_a = np.array([0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0], dtype=bool)
    np.testing.assert_array_equal(report.per_attack_robust["A"], robust_a)
    assert ra.robust_after == 8
    # B sees only the 8 samples A left robust.
    assert B.seen == [[1, 2, 3, 4], [6, 7, 8, 9]]
    assert (rb.attacked, rb.broken, rb.invalid) == (8, 3, 1)  # broken: 1, 2, 6
    assert rb.violations == {"non_finite": 1, "out_of_range": 1, "out_of_ball": 1}
    assert rb.forward_samples == 3 * 8
    robust_b = robust_a.copy()
    robust_b[[1, 2, 6]] = False
    np.testing.assert_array_equal(report.per_attack_robust["B"], robust_b)
    np.testing.assert_array_equal(report.robust, robust_b)
    assert rb.robust_after == 5
    assert report.robust_accuracy == 5 / N and report.accuracy("A") == 8 / N
    assert report.clean_accuracy == 10 / N
    # Rows: clean, A, B, worst case, with Wilson intervals of the counts.
    rows = report.rows()
    assert [r["attack"] for r in rows] == ["clean", "A", "B", "worst case"]
    assert [r["accuracy"] for r in rows] == [10 / N, 8 / N, 5 / N, 5 / N]
    for r, k in zip(rows, (10, 8, 5, 5), strict=True):
        assert (r["ci_low"], r["ci_high"]) == wilson_interval(k, N)
    assert [r["attacked"] for r in rows] == [N, 10, 8, N]
    assert [r["violations"] for r in rows] == [0, 4, 1, 5]
    assert rows[0]["forward_per_sample"] == 1.0 and rows[0]["wall_time_s"] == 0.0
    assert [r["forward_per_sample"] for r in rows[1:3]] == [2.0, 3.0]
    assert math.isnan(rows[3]["forward_per_sample"])
    assert rows[3]["wall_time_s"] == ra.wall_time_s + rb.wall_time_s
    assert rows[1]["wall_time_s"] == ra.wall_time_s > 0
    assert [(r["norm"], r["eps"]) for r in rows] == [
        ("-", "-"),
        ("linf", 0.1),
        ("linf", 0.1),
        ("-", "-"),
    ]


def test_independent_bookkeeping_is_exact():
    model = TwoPixel()
    x, y = problem()
    pa, pb = plans()
    A = Scripted(model, pa)
    report = evaluate(
        model, (x, y), [A, Scripted(model, pb, name="B")], batch_size=5, cascade=False
    )
    # A sequence of attacks takes each one's ``name`` or its type's name.
    assert [r.name for r in report.attacks] == ["Scripted", "B"]
    a, b = report.attacks
    assert (a.attacked, b.attacked) == (10, 10)
    assert A.seen == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert (a.broken, b.broken) == (2, 4)  # B: 0, 1, 2, 6 (7 is NaN; 11 is clean-wrong)
    ra = np.array([0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0], dtype=bool)
    rb = np.array([0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0], dtype=bool)
    np.testing.assert_array_equal(report.per_attack_robust["Scripted"], ra)
    np.testing.assert_array_equal(report.per_attack_robust["B"], rb)
    np.testing.assert_array_equal(report.robust, ra & rb)
    assert (a.robust_after, b.robust_after) == (8, 6)
    assert report.robust_accuracy == 5 / N
    text = report.to_markdown()
    assert text.endswith(
        f"{N} samples; protocol: independent (each attack on all clean-correct samples)."
    )
    lo, hi = wilson_interval(6, N)
    assert f"| B | linf | 0.1 | 50.0 % | [{100 * lo:.1f}, {100 * hi:.1f}] | 10 | 1 | 2.0 |" in text
    lines = text.splitlines()
    head = len(report.header())
    assert head == 6 and lines[:head] == report.header()
    assert lines[head] == (
        "| attack | norm | ε | accuracy | 95 % CI | attacked | violations | "
        "forward passes / sample | time (s) |"
    )
    assert lines[head + 1] == "|---|---|---|---|---|---|---|---|---|"
    assert "| clean | - | - | 83.3 % |" in text and "| worst case | - | - | 41.7 % |" in text
    assert "| 12 | 5 | - |" in text  # worst case: all samples, 5 violations, no cost


def test_cascade_markdown_and_dict():
    model = TwoPixel()
    x, y = problem()
    pa, pb = plans()
    report = evaluate(
        model, (x, y), {"A": Scripted(model, pa), "B": Scripted(model, pb)}, meta={"k": np.int64(3)}
    )
    assert report.to_markdown().endswith(
        f"{N} samples; protocol: cascade (each attack on still-robust samples)."
    )
    assert str(report) == report.to_markdown()
    d = report.to_dict()
    assert d["total"] == N and d["clean_correct"] == 10 and d["cascade"] is True
    assert d["clean_accuracy"] == 10 / N and d["robust_accuracy"] == 5 / N
    assert d["robust"] == report.robust.astype(int).tolist()
    assert d["per_attack_robust"]["A"] == [0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0]
    assert d["attacks"][0]["violations"]["out_of_range"] == 3
    assert d["curvature"] is None and d["meta"] == {"k": np.int64(3)}
    assert d["rows"][2]["attacked"] == 8
    assert json.loads(report.to_json())["meta"] == {"k": 3}
    prov = report.provenance
    assert (prov["batch_size"], prov["device"], prov["dtype"]) == (256, "cpu", "torch.float32")
    assert prov["torch_version"] == torch.__version__ and prov["elapsed_s"] > 0
    assert set(prov["attacks"]) == {"A", "B"}


def test_float64_model_gets_float64_batches_and_paramless_model_float32():
    model = TwoPixel(torch.float64)
    x, y = problem(torch.float32)
    A = Scripted(model, {0: "flip"})
    evaluate(model, (x, y), {"A": A})
    assert A._dtypes == [torch.float64]

    class NoParams(nn.Module):
        def forward(self, x):
            return TwoPixel()(x)

    free = NoParams()
    B = Scripted(free, {0: "flip"})
    report = evaluate(free, (x.double(), y), {"B": B})
    assert B._dtypes == [torch.float32] and report.provenance["device"] == "cpu"
    assert report.attacks[0].broken == 1


def test_inputs_are_checked():
    model = TwoPixel()
    x, y = problem()
    atk = {"A": Scripted(model, {})}
    with pytest.raises(ValueError, match=r"batch_size must be >= 1; got 0\."):
        evaluate(model, (x, y), atk, batch_size=0)
    evaluate(model, (x, y), atk, batch_size=1)
    with pytest.raises(ValueError, match=r"12 images but 11 labels\."):
        evaluate(model, (x, y[:11]), atk)
    for bad in (x - 0.5, x + 0.5, x.masked_fill(x > 0.9, float("nan"))):
        with pytest.raises(
            ValueError, match=r"^images must be finite and in \[0, 1\]; rescale them first\.$"
        ):
            evaluate(model, (bad, y), atk)
    with pytest.raises(
        TypeError, match=r"^data must be an ImageData or a pair \(images, labels\)\.$"
    ):
        evaluate(model, (x, y, y), atk)
    with pytest.raises(
        TypeError, match=r"^data must be an ImageData or a pair \(images, labels\)\.$"
    ):
        evaluate(model, x, atk)
    # A pair as a list, numpy labels of another integer type, and an ImageData all work.
    r1 = evaluate(model, [x.numpy(), y.numpy().astype(np.int32)], {"A": Scripted(model, {})})
    data = ImageData(images=x.numpy(), labels=y.numpy().astype(np.int32), name="toy")
    r2 = evaluate(model, data, {"A": Scripted(model, {0: "flip"})})
    assert (r1.clean_correct, r2.clean_correct, r2.attacks[0].broken) == (10, 10, 1)
    with pytest.raises(ValueError, match=r"attack names must be unique; got \['x', 'x'\]"):
        evaluate(model, (x, y), [Scripted(model, {}, name="x"), Scripted(model, {}, name="x")])
    with pytest.raises(ValueError, match=r"^attacks is empty; pass at least one attack\.$"):
        evaluate(model, (x, y), [])


@pytest.mark.parametrize(
    ("norm", "canonical"),
    [
        ("Linf", "linf"),
        ("L_inf", "linf"),
        ("inf", "linf"),
        ("ℓ∞", "linf"),
        ("L2", "l2"),
        ("l_2", "l2"),
        ("2", "l2"),
        ("ℓ2", "l2"),
    ],
)
def test_norm_names(norm, canonical):
    model = TwoPixel()
    x, y = problem()
    report = evaluate(model, (x, y), {"A": Scripted(model, {0: "far"}, norm=norm, eps=0.1)})
    rec = report.attacks[0]
    assert rec.norm == canonical
    # "far" moves two pixels by 0.3: linf 0.3 and l2 0.42 both leave the 0.1 ball.
    assert rec.violations["out_of_ball"] == 1 and rec.broken == 0


def test_norm_objects_and_bad_norms():
    from krylovadv.torch.attacks import get_norm

    model = TwoPixel()
    x, y = problem()
    report = evaluate(model, (x, y), {"A": Scripted(model, {0: "flip"}, norm=get_norm("l2"))})
    assert report.attacks[0].norm == "l2" and report.attacks[0].broken == 1
    with pytest.raises(ValueError, match=r"unknown attack norm 'l1'; expected 'linf' or 'l2'."):
        evaluate(model, (x, y), {"A": Scripted(model, {}, norm="l1")})
    with pytest.raises(ValueError, match="has no norm attribute"):
        evaluate(model, (x, y), {"A": Scripted(model, {}, norm=None)})
    with pytest.raises(ValueError, match="has no norm attribute"):
        evaluate(model, (x, y), {"A": Scripted(model, {}, norm=3)})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [0.3, 2.0])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_check_adversarial_thresholds(dtype, eps, norm):
    """In the ball up to ``eps (1 + s) + s``, in [0, 1] up to ``s``; s = 8 ulp max(1, eps)."""
    s = 8 * torch.finfo(dtype).eps * max(1.0, eps)
    limit = eps * (1 + s) + s
    x = torch.zeros(4, 2, 2, dtype=torch.float64)
    d = torch.zeros(4, 2, 2, dtype=torch.float64)
    d[0, 0, 0] = limit  # on the limit
    d[1, 0, 0] = limit * (1 + 4 * torch.finfo(torch.float64).eps) + 2 * s  # beyond
    d[2, 1, 1] = limit / 2
    x_adv = (x + d).to(dtype)
    x_adv[2, 1, 1] = -s  # in range by the slack
    x_adv[3, 1, 0] = 1 + 4 * s  # out of range beyond the slack
    x_adv[3, 0, 1] = 0.0
    checks = check_adversarial(x.to(dtype), x_adv, eps=eps, norm=norm)
    assert checks["in_ball"].tolist() == [True, False, True, eps > 1]
    assert checks["in_range"].tolist() == [eps <= 1, eps <= 1, True, False]
    assert checks["finite"].tolist() == [True] * 4
    assert checks["valid"].tolist() == [
        a and b
        for a, b in zip(checks["in_ball"].tolist(), checks["in_range"].tolist(), strict=True)
    ]


def test_check_adversarial_sizes_and_errors():
    x = torch.full((3, 1, 2, 2), 0.5, dtype=torch.float64)
    d = torch.zeros_like(x)
    d[0, 0, 0, 0], d[0, 0, 1, 1] = 0.3, 0.4  # linf 0.4, l2 0.5
    d[1, 0, 0, 1] = -0.45
    x_adv = x + d
    x_adv[2, 0, 1, 0] = float("inf")
    lin = check_adversarial(x, x_adv, eps=0.42, norm="linf")
    l2 = check_adversarial(x, x_adv, eps=0.48, norm="l2")
    assert lin["in_ball"].tolist()[:2] == [True, False]
    assert l2["in_ball"].tolist()[:2] == [False, True]
    assert lin["finite"].tolist() == [True, True, False] and not lin["valid"][2]
    assert set(lin) == {"finite", "in_range", "in_ball", "valid"}
    with pytest.raises(
        ValueError, match=r"x_adv has shape \(2, 1, 2, 2\) but x has \(3, 1, 2, 2\)"
    ):
        check_adversarial(x, x_adv[:2], eps=0.1, norm="linf")
    with pytest.raises(ValueError, match=r"norm must be 'linf' or 'l2'; got 'l1'\."):
        check_adversarial(x, x, eps=0.1, norm="l1")


def test_interrupt_names_the_position_and_resume_redoes_nothing(tmp_path):
    model = TwoPixel()
    x, y = problem()
    pa, pb = plans()

    progress = tmp_path / "p.json"
    with pytest.raises(RunInterrupted) as caught:
        evaluate(
            model,
            (x, y),
            {"A": Scripted(model, pa), "B": Scripted(model, pb, stop=1)},
            batch_size=4,
            resume=progress,
        )
    assert caught.value.saved == str(progress)
    assert caught.value.detail == "B: 1 of 2 batches done"
    with pytest.raises(RunInterrupted) as caught:
        evaluate(model, (x, y), {"A": Scripted(model, pa, stop=1)}, batch_size=4)
    assert caught.value.saved is None and caught.value.detail == "A: 1 of 3 batches done"
    A, B = Scripted(model, pa), Scripted(model, pb)
    report = evaluate(model, (x, y), {"A": A, "B": B}, batch_size=4, resume=progress)
    assert A.seen == [] and B.seen == [[6, 7, 8, 9]]
    fresh = evaluate(
        model, (x, y), {"A": Scripted(model, pa), "B": Scripted(model, pb)}, batch_size=4
    )
    np.testing.assert_array_equal(report.robust, fresh.robust)
    for got, want in zip(report.attacks, fresh.attacks, strict=True):
        assert (got.attacked, got.broken, got.invalid, got.violations, got.forward_samples) == (
            want.attacked,
            want.broken,
            want.invalid,
            want.violations,
            want.forward_samples,
        )
        assert got.robust_after == want.robust_after
    saved = json.loads(progress.read_text())
    assert saved["clean"] == [1] * 10 + [0, 0]


def test_model_mode_restored_after_an_error():
    model = TwoPixel()
    x, y = problem()
    model.train()

    class Boom(Scripted):
        def __call__(self, xb, yb):
            assert not model.training  # evaluated in eval mode
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        evaluate(model, (x, y), {"A": Boom(model, {})})
    assert model.training
    model.eval()
    evaluate(model, (x, y), {"A": Scripted(model, {})})
    assert not model.training


def test_report_without_samples_and_json_defaults(tmp_path):
    rec = AttackRecord(name="A", norm="l2", eps=0.5)
    assert (rec.attacked, rec.broken, rec.robust_after, rec.invalid) == (0, 0, 0, 0)
    assert rec.violations == {"non_finite": 0, "out_of_range": 0, "out_of_ball": 0}
    assert (rec.forward_samples, rec.wall_time_s) == (0, 0.0)
    empty = EvaluationReport(
        total=0,
        clean_correct=0,
        attacks=[rec],
        robust=np.zeros(0, dtype=bool),
        per_attack_robust={"A": np.zeros(0, dtype=bool)},
        cascade=True,
        meta={"i": np.int32(2), "f": np.float32(0.5), "a": np.arange(2), "p": tmp_path},
    )
    assert (empty.clean_accuracy, empty.robust_accuracy, empty.accuracy("A")) == (0.0, 0.0, 0.0)
    rows = empty.rows()
    assert rows[1]["forward_per_sample"] == 0.0 and rows[1]["ci_low"] == 0.0
    assert rows[1]["ci_high"] == 1.0 and rows[1]["eps"] == 0.5
    assert empty.header() == [] and empty.provenance == {} and empty.curvature is None
    path = tmp_path / "sub" / "r.json"
    text = empty.to_json(path)
    assert path.read_text() == text
    payload = json.loads(text)
    assert payload["meta"] == {"i": 2, "f": 0.5, "a": [0, 1], "p": str(tmp_path)}
    assert isinstance(payload["meta"]["i"], int) and isinstance(payload["meta"]["f"], float)
    assert "| A | l2 | 0.5 | 0.0 % | [0.0, 100.0] | 0 | 0 | 0.0 | 0.0 |" in empty.to_markdown()


def test_header_and_curvature_table():
    prov = {
        "model_sha256": "m" * 64,
        "data_sha256": "d" * 64,
        "library_version": "9.9",
        "torch_version": "2.x",
        "dtype": "torch.float64",
        "batch_size": 7,
        "device": "cpu",
        "attacks": {"P": {"eps": 0.25, "steps": 3, "seed": 1}, "Q": {"eps": "x"}, "R": {"eps": 1}},
        "elapsed_s": 1.25,
    }
    curv = {
        "top_eigenvalue": np.array([1.0, 2.0, np.nan, 4.0]),
        "krylov_dim": np.array([1, 2, 3, 4]),
        "fd_gap": np.array([0.1, 0.2, 0.3, 0.4]),
    }
    report = EvaluationReport(
        total=4,
        clean_correct=3,
        attacks=[],
        robust=np.array([1, 1, 0, 0], dtype=bool),
        per_attack_robust={},
        cascade=False,
        meta={},
        curvature=curv,
        provenance=prov,
    )
    assert report.header() == [
        f"- model: given module, weights sha256 `{'m' * 64}` (of the state dict)",
        f"- data: given arrays, 4 samples (sha256 `{'d' * 16}…`)",
        "- attacks: P: ε = 0.25, 3 step(s), seed 1; Q; R: ε = 1, ? step(s), seed -",
        "- protocol: independent; batch size 7; dtype float64; device cpu",
        "- krylovadv 9.9, torch 2.x; elapsed 1.2 s",
        "",
    ]
    report.meta = {
        "model": "net",
        "data": "digits",
        "split": "test",
        "seed": 4,
        "model_file_sha256": "f" * 8,
    }
    head = report.header()
    assert (
        head[0] == f"- model: net, file sha256 `{'f' * 8}`; weights sha256 `{'m' * 64}` "
        "(of the state dict)"
    )
    assert head[1].startswith("- data: digits, split test, 4 samples, subset seed 4 (")
    lines = report.to_markdown().splitlines()
    assert lines[:6] == head
    i = lines.index("| curvature (clean inputs) | median | 10 % | 90 % |")
    assert lines[i - 1] == "" and lines[i + 1] == "|---|---|---|---|"
    q = np.nanpercentile([1.0, 2.0, 4.0], [10, 50, 90])
    assert lines[i + 2] == f"| top_eigenvalue | {q[1]:.3g} | {q[0]:.3g} | {q[2]:.3g} |"
    q = np.percentile([1, 2, 3, 4], [10, 50, 90])
    assert lines[i + 3] == f"| krylov_dim | {q[1]:.3g} | {q[0]:.3g} | {q[2]:.3g} |"
    assert lines[i + 4].startswith("| fd_gap | 0.25 |") and len(lines) == i + 5
    assert report.to_dict()["curvature"]["krylov_dim"] == [1, 2, 3, 4]


def test_wall_time_adds_up_over_batches(monkeypatch):
    """Each batch is timed by two clock readings; the times of the batches add up."""
    import krylovadv.torch.evaluate as module

    # A stand-in for the time module whose perf_counter advances by 1 per call.
    clock = itertools.count(1.0)
    monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    model = TwoPixel()
    x, y = problem()
    pa, pb = plans()
    report = evaluate(
        model, (x, y), {"A": Scripted(model, pa), "B": Scripted(model, pb)}, batch_size=4
    )
    ra, rb = report.attacks
    assert (ra.wall_time_s, rb.wall_time_s) == (3.0, 2.0)  # 3 and 2 batches, 1 s each
    # Readings: the start, two per batch (5 batches), the end.
    assert report.provenance["elapsed_s"] == 11.0
    assert report.rows()[-1]["wall_time_s"] == 5.0
    assert "| A | linf | 0.1 | 66.7 % |" in report.to_markdown()
    assert report.to_markdown().count("| 3.0 |") == 1


def test_masking_hook_gets_the_evaluation(monkeypatch):
    import krylovadv.torch.masking as masking

    seen = []

    def fake(model, x, y, items, report, options):
        seen.append((model.training, x, y, items, report, options))
        return {"flags": ["stub"]}

    monkeypatch.setattr(masking, "diagnose_evaluation", fake)
    model = TwoPixel(torch.float64)
    x, y = problem()
    attack = Scripted(model, {0: "flip"})
    model.train()
    report = evaluate(model, (x, y), {"A": attack}, masking={"steps": 2})
    assert model.training and len(seen) == 1
    training, xs, ys, items, got, options = seen[0]
    assert training is False and got is report and options == {"steps": 2}
    assert xs.dtype == torch.float64 and torch.equal(xs, x.double()) and torch.equal(ys, y)
    assert items == [("A", attack)]
    assert report.meta["masking"] == {"flags": ["stub"]}
    model.eval()
    evaluate(model, (x, y), {"A": attack}, masking=True)
    assert seen[1][5] is True and not model.training
    assert "masking" not in evaluate(model, (x, y), {"A": attack}).meta and len(seen) == 2


def test_keyword_calls_count_as_forward_passes():
    """The cost counter sees the model called by keyword too (``model(x=x)``)."""
    model = TwoPixel()
    x, y = problem()
    report = evaluate(model, (x, y), {"A": Scripted(model, {}, calls=3, keyword=True)})
    assert report.attacks[0].forward_samples == 3 * 10


def test_attack_without_a_norm_attribute():
    class NoNorm:
        eps = 0.1

        def __call__(self, x, y):
            return x

    model = TwoPixel()
    x, y = problem()
    msg = r"attack .* has no norm attribute \('linf' or 'l2'\)\."
    with pytest.raises(ValueError, match=msg):
        evaluate(model, (x, y), {"A": NoNorm()})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_check_adversarial_slack_is_eight_ulps(dtype):
    """A size between the 8-ulp and the 9-ulp limit is out of the ball; 0, 1, 1 + s, -s in range."""
    eps = 0.3
    u = torch.finfo(dtype).eps  # max(1, eps) = 1
    lim8, lim9 = eps * (1 + 8 * u) + 8 * u, eps * (1 + 9 * u) + 9 * u
    v = torch.tensor([(lim8 + lim9) / 2], dtype=torch.float64).to(dtype)
    assert lim8 < float(v) <= lim9  # representable between the two limits
    x = torch.zeros(2, 4, dtype=dtype)
    x_adv = x.clone()
    x_adv[0, 0] = v[0]
    x_adv[1] = torch.tensor([0.0, 1.0, 1 + 8 * u, -8 * u], dtype=dtype)
    for norm in ("linf", "l2"):
        checks = check_adversarial(x, x_adv, eps=eps, norm=norm)
        assert checks["in_ball"].tolist() == [False, False], norm
        assert checks["in_range"].tolist() == [True, True], norm


def test_one_sample_report_and_formats(tmp_path):
    rec = AttackRecord(name="A", norm="linf", eps=8 / 255, attacked=1, broken=0, forward_samples=3)
    report = EvaluationReport(
        total=1,
        clean_correct=1,
        attacks=[rec],
        robust=np.array([True]),
        per_attack_robust={"A": np.array([True])},
        cascade=True,
        provenance={
            "model_sha256": "m",
            "data_sha256": "d" * 20,
            "library_version": "1",
            "torch_version": "2",
            "dtype": "torch.float32",
            "batch_size": 1,
            "device": "cpu",
            "elapsed_s": 0.0,
        },
    )
    assert (report.clean_accuracy, report.robust_accuracy, report.accuracy("A")) == (1.0, 1.0, 1.0)
    rows = report.rows()
    assert [r["accuracy"] for r in rows] == [1.0, 1.0, 1.0]
    assert rows[1]["forward_per_sample"] == 3.0
    head = report.header()
    assert head[2] == "- attacks: "  # a provenance without attacks
    assert head[3] == "- protocol: cascade; batch size 1; dtype float32; device cpu"
    lines = report.to_markdown().splitlines()
    assert lines[9].startswith("| A | linf | 0.0313725 | 100.0 % |")
    assert lines[-2] == "" and lines[-1].startswith("1 samples; protocol: cascade")
    text = report.to_json(tmp_path / "a" / "b" / "r.json")
    assert text.startswith('{\n  "total": 1,\n  "clean_correct": 1,')
    assert (tmp_path / "a" / "b" / "r.json").read_text() == text
    assert '"robust": [\n    1\n  ]' in text and '"A": [\n      1\n    ]' in text


def test_labels_become_int64_and_images_may_touch_0_and_1():
    model = TwoPixel()
    x, y = problem()
    x[0, 0, 0, 3], x[1, 0, 0, 3] = 0.0, 1.0
    for data in (
        (x.numpy(), y.numpy().astype(np.int32)),
        ImageData(images=x.numpy(), labels=y.numpy().astype(np.int32), name="toy"),
    ):
        attack = Scripted(model, {})
        report = evaluate(model, data, {"A": attack})
        assert attack._label_dtypes == [torch.int64] and report.clean_correct == 10
        assert report.robust.dtype == bool and report.per_attack_robust["A"].dtype == bool


def test_device_argument_is_used():
    model = TwoPixel()
    x, y = problem()
    report = evaluate(model, (x, y), {"A": Scripted(model, {})}, device="cpu:0")
    assert report.provenance["device"] == "cpu:0"


def test_progress_bars_name_each_attack(capsys):
    model = TwoPixel()
    x, y = problem()
    evaluate(model, (x, y), {"Alpha": Scripted(model, {})}, progress=True, batch_size=4)
    err = capsys.readouterr().err
    assert "Alpha: " in err and "0/3" in err
    evaluate(model, (x, y), {"Alpha": Scripted(model, {})}, progress=False)
    assert capsys.readouterr().err == ""


def test_resume_refuses_other_labels_protocol_or_meta(tmp_path):
    from krylovadv.torch.fingerprint import FingerprintMismatch

    model = TwoPixel()
    x, y = problem()
    progress = tmp_path / "p.json"
    evaluate(model, (x, y), {"A": Scripted(model, {})}, resume=progress, meta={"k": 1})
    y2 = y.clone()
    y2[0] = 1 - y2[0]
    for kwargs in (
        {"data": (x, y2), "meta": {"k": 1}},
        {"data": (x, y), "meta": {"k": 1}, "cascade": False},
        {"data": (x, y), "meta": {"k": 2}},
    ):
        data = kwargs.pop("data")
        with pytest.raises(FingerprintMismatch):
            evaluate(model, data, {"A": Scripted(model, {})}, resume=progress, **kwargs)
    evaluate(model, (x, y), {"A": Scripted(model, {})}, resume=progress, meta={"k": 1})


def test_progress_file_holds_the_clean_pass_before_any_attack(tmp_path):
    model = TwoPixel()
    x, y = problem()
    progress = tmp_path / "p.json"
    with pytest.raises(RunInterrupted) as caught:
        evaluate(model, (x, y), {"A": Scripted(model, {}, stop=0)}, resume=progress)
    assert caught.value.detail == "A: 0 of 1 batches done"
    text = progress.read_text()
    assert '"clean": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]' in text
    evaluate(model, (x, y), {"A": Scripted(model, {0: "flip"})}, resume=progress, batch_size=256)
    saved = json.loads(progress.read_text())
    assert '"still": [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]' in json.dumps(saved["attacks"]["A"])


def test_interrupts_before_the_attacks_name_the_phase(monkeypatch):
    import krylovadv.torch.evaluate as module

    x, y = problem()

    class Stops(TwoPixel):
        def forward(self, inp):
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as caught:
        evaluate(Stops(), (x, y), {"A": Scripted(TwoPixel(), {})})
    assert caught.value.detail == "before the clean pass"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "curvature_diagnostics", stop)
    model = TwoPixel()
    with pytest.raises(RunInterrupted) as caught:
        evaluate(model, (x, y), {"A": Scripted(model, {})}, curvature=True)
    assert caught.value.detail == "in the curvature diagnostics"


def test_curvature_runs_batch_by_batch_with_the_options(monkeypatch):
    import krylovadv.torch.evaluate as module

    calls = []

    def fake(model, xb, yb, **options):
        calls.append(options)
        return {"top_eigenvalue": np.array([ident(r) for r in xb]), "fd_gap": yb.numpy()}

    monkeypatch.setattr(module, "curvature_diagnostics", fake)
    model = TwoPixel()
    x, y = problem()
    report = evaluate(
        model, (x, y), {"A": Scripted(model, {})}, curvature={"tau": 1e-3}, batch_size=5
    )
    assert calls == [{"tau": 1e-3}] * 3
    np.testing.assert_array_equal(report.curvature["top_eigenvalue"], np.arange(N))
    np.testing.assert_array_equal(report.curvature["fd_gap"], y.numpy())
    calls.clear()
    evaluate(model, (x, y), {"A": Scripted(model, {})}, curvature=True, batch_size=5)
    assert calls == [{}] * 3


def test_clean_pass_is_batched():
    calls = []

    class Counting(TwoPixel):
        def forward(self, inp):
            calls.append(int(inp.shape[0]))
            return super().forward(inp)

    model = Counting()
    x, y = problem()
    evaluate(model, (x, y), {"A": Scripted(model, {}, calls=0)}, batch_size=5)
    # The clean pass (5, 5, 2), then one check of the adversarial batches (5, 5).
    assert calls == [5, 5, 2, 5, 5]


def test_a_call_without_arguments_costs_nothing_and_does_not_fail():
    """A forward with no input at all (defaults only) is not a sample evaluation."""

    class Defaults(TwoPixel):
        def forward(self, x=None):
            return super().forward(torch.zeros(1, 1, 1, 4) if x is None else x)

    class CallsBare(Scripted):
        def __call__(self, x, y):
            self.model()
            return super().__call__(x, y)

    model = Defaults()
    x, y = problem()
    report = evaluate(model, (x, y), {"A": CallsBare(model, {}, calls=1)})
    assert report.attacks[0].forward_samples == 10
