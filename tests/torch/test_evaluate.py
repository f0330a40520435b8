"""evaluate(): protocol invariants, threat-model checks, resume, rendering."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from krylovadv.torch.attacks import FGSM, PGD
from krylovadv.torch.evaluate import check_adversarial, evaluate, wilson_interval
from krylovadv.torch.fingerprint import FingerprintMismatch


@pytest.fixture(scope="module")
def problem():
    """A linear classifier on 4x4 images that gets most of its own labels right."""
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(3, 16, generator=generator))
        model[1].bias.zero_()
    x = torch.rand(40, 1, 4, 4, generator=generator)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:4] = (y[:4] + 1) % 3  # a few clean mistakes
    return model.eval(), x, y


class Shift:
    """A 'bad' attack: leaves the ball and [0, 1] (planted violation)."""

    def __init__(self, model, eps, amount, norm="linf"):
        self.model, self.eps, self.amount, self.norm = model, eps, amount, norm

    def __call__(self, x, y):
        return x + self.amount


class Flaky:
    """Wraps an attack and raises on the n-th call (an interrupted run).

    The bookkeeping is private (underscore) so that the wrapper's fingerprint
    is the wrapped attack's configuration, as for the attack itself.
    """

    def __init__(self, attack, fail_on):
        self._attack, self._fail_on, self._calls = attack, fail_on, 0
        self.eps, self.norm, self.model = attack.eps, attack.norm, attack.model
        self.steps, self.seed = attack.steps, attack.seed

    @property
    def calls(self):
        return self._calls

    def __call__(self, x, y):
        self._calls += 1
        if self._calls == self._fail_on:
            raise KeyboardInterrupt("killed")
        return self._attack(x, y)


def attacks_for(model):
    return {
        "fgsm": FGSM(model, eps=0.1),
        "pgd": PGD(model, eps=0.1, steps=5, seed=1),
        "pgd-l2": PGD(model, norm="l2", eps=0.4, steps=5, seed=1),
    }


@pytest.mark.parametrize("cascade", [True, False])
def test_worst_case_is_at_most_every_attack(problem, cascade):
    model, x, y = problem
    report = evaluate(model, (x, y), attacks_for(model), batch_size=16, cascade=cascade)
    assert report.clean_correct == int((model(x).argmax(1) == y).sum())
    for name in report.per_attack_robust:
        assert report.robust_accuracy <= report.accuracy(name)
        assert report.accuracy(name) <= report.clean_accuracy
        # Robust implies correct.
        assert not np.any(
            report.per_attack_robust[name] & ~np.asarray((model(x).argmax(1) == y).numpy())
        )
    assert report.robust_accuracy < report.clean_accuracy  # the attacks do something


def test_cascade_and_independent_agree_on_the_worst_case(problem):
    # Only for deterministic attacks: a random start's draws depend on which samples
    # share the batch, and cascade changes the batches.
    model, x, y = problem

    def deterministic():
        return {
            "fgsm": FGSM(model, eps=0.1),
            "pgd": PGD(model, eps=0.1, steps=5, random_start=False),
            "pgd-l2": PGD(model, norm="l2", eps=0.4, steps=5, random_start=False),
        }

    a = evaluate(model, (x, y), deterministic(), cascade=True, batch_size=16)
    b = evaluate(model, (x, y), deterministic(), cascade=False, batch_size=16)
    np.testing.assert_array_equal(a.robust, b.robust)
    # Cascade attacks fewer samples with the later attacks.
    assert sum(r.attacked for r in a.attacks) <= sum(r.attacked for r in b.attacks)


def test_planted_violations_are_reported_and_never_count_as_success(problem):
    model, x, y = problem
    report = evaluate(model, (x, y), {"escape": Shift(model, eps=0.1, amount=0.5)}, cascade=False)
    record = report.attacks[0]
    assert record.invalid == record.attacked > 0
    assert record.violations["out_of_ball"] == record.attacked
    assert record.violations["out_of_range"] > 0
    assert report.accuracy("escape") == report.clean_accuracy  # nothing broken
    row = next(r for r in report.rows() if r["attack"] == "escape")
    assert row["violations"] == record.attacked


def test_non_finite_examples_are_violations(problem):
    model, x, y = problem
    report = evaluate(model, (x, y), {"nan": Shift(model, eps=0.1, amount=float("nan"))})
    assert report.attacks[0].violations["non_finite"] == report.attacks[0].attacked


def test_check_adversarial_per_sample():
    x = torch.full((3, 2), 0.5)
    x_adv = torch.tensor([[0.6, 0.5], [0.5, 0.75], [1.2, 0.5]])
    checks = check_adversarial(x, x_adv, eps=0.2, norm="linf")
    assert checks["valid"].tolist() == [True, False, False]
    assert checks["in_range"].tolist() == [True, True, False]
    l2 = check_adversarial(
        x, torch.tensor([[0.6, 0.6], [0.5, 0.5], [0.7, 0.6]]), eps=0.15, norm="l2"
    )
    assert l2["in_ball"].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="linf"):
        check_adversarial(x, x, eps=0.1, norm="l1")


def test_resume_skips_finished_work_and_gives_the_same_report(problem, tmp_path):
    model, x, y = problem
    progress = tmp_path / "progress.json"
    reference = evaluate(model, (x, y), attacks_for(model), batch_size=8)
    flaky = attacks_for(model)
    flaky["pgd"] = Flaky(flaky["pgd"], fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, (x, y), flaky, batch_size=8, resume=progress)
    assert progress.is_file()
    resumed_attacks = attacks_for(model)
    counting = Flaky(resumed_attacks["pgd"], fail_on=-1)
    resumed_attacks["pgd"] = counting
    resumed = evaluate(model, (x, y), resumed_attacks, batch_size=8, resume=progress)
    np.testing.assert_array_equal(resumed.robust, reference.robust)
    for name in reference.per_attack_robust:
        np.testing.assert_array_equal(
            resumed.per_attack_robust[name], reference.per_attack_robust[name]
        )
    batches = int(np.ceil(reference.attacks[1].attacked / 8))
    assert counting.calls == batches - 1  # the first pgd batch was not redone


def test_resume_file_of_another_evaluation_is_refused(problem, tmp_path):
    model, x, y = problem
    progress = tmp_path / "progress.json"
    evaluate(model, (x, y), attacks_for(model), resume=progress)
    with pytest.raises(FingerprintMismatch, match="data_sha256") as caught:
        evaluate(model, (x[:10], y[:10]), attacks_for(model), resume=progress)
    assert str(progress) in str(caught.value) and "samples: 40 -> 10" in str(caught.value)


def test_model_mode_is_restored_and_bad_inputs_are_refused(problem):
    model, x, y = problem
    model.train()
    evaluate(model, (x, y), {"fgsm": FGSM(model, eps=0.1)})
    assert model.training
    model.eval()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate(model, (x * 3, y), {"fgsm": FGSM(model, eps=0.1)})
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, (x, y), {})
    with pytest.raises(ValueError, match="labels"):
        evaluate(model, (x, y[:5]), {"fgsm": FGSM(model, eps=0.1)})


def test_report_renders_markdown_and_json(problem, tmp_path):
    model, x, y = problem
    report = evaluate(model, (x, y), attacks_for(model), meta={"scale": "test"})
    text = report.to_markdown()
    for name in ("clean", "fgsm", "pgd", "pgd-l2", "worst case", "95 % CI"):
        assert name in text
    path = tmp_path / "report.json"
    report.to_json(path)
    payload = json.loads(path.read_text())
    assert payload["meta"] == {"scale": "test"}
    assert payload["robust_accuracy"] == report.robust_accuracy
    assert [a["name"] for a in payload["attacks"]] == ["fgsm", "pgd", "pgd-l2"]
    # The cost column counts forward passes through a hook: PGD with 5 steps ≈ 5.
    row = next(r for r in report.rows() if r["attack"] == "pgd")
    assert 5.0 <= row["forward_per_sample"] <= 7.0


def test_wilson_interval_known_values():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_curvature_diagnostics_match_dense_linear_algebra(problem):
    from krylovadv.torch.evaluate import curvature_diagnostics
    from krylovadv.torch.hessian import InputHessian

    model, x, y = problem
    model64 = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double()
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    x64 = x[:6].double()
    diagnostics = curvature_diagnostics(model64, x64, y[:6], tau=1e-8, eig_tol=1e-10, eta=None)
    dense = np.asarray(InputHessian(model64, x64, y[:6]).to_dense())
    for b in range(6):
        eigenvalues = np.linalg.eigvalsh(dense[b])
        top = eigenvalues[np.argmax(np.abs(eigenvalues))]
        assert diagnostics["top_eigenvalue"][b] == pytest.approx(top, rel=1e-6)
        # softmax-CE of a 3-class linear model: rank <= 2, so m <= 2 (+1 for rounding).
        assert diagnostics["krylov_dim"][b] <= 3
    assert diagnostics["krylov_converged"].all()
    assert np.all(diagnostics["fd_gap"] < 1e-5)  # smooth in x: FD is accurate in float64


def test_evaluate_reports_curvature_on_request(problem):
    model, x, y = problem
    report = evaluate(model, (x, y), {"fgsm": FGSM(model, eps=0.1)}, curvature=True)
    assert set(report.curvature) >= {"top_eigenvalue", "krylov_dim", "fd_gap"}
    assert all(len(v) == len(y) for v in report.curvature.values())
    assert "curvature (clean inputs)" in report.to_markdown()
    assert evaluate(model, (x, y), {"fgsm": FGSM(model, eps=0.1)}).curvature is None


def test_report_header_states_what_was_evaluated(problem, tmp_path):
    from krylovadv import __version__
    from krylovadv.torch.fingerprint import model_sha256

    model, x, y = problem
    meta = {"model": "linear", "data": "toy", "split": "test", "seed": 7}
    report = evaluate(model, (x, y), attacks_for(model), meta=meta, cascade=False)
    header = "\n".join(report.header())
    for fact in (
        f"weights sha256 `{model_sha256(model)}`",
        "data: toy, split test, 40 samples, subset seed 7",
        "pgd: ε = 0.1, 5 step(s), seed 1",
        "protocol: independent",
        f"krylovadv {__version__}",
        "elapsed",
    ):
        assert fact in header, fact
    assert report.to_markdown().startswith(header)
    assert report.to_dict()["provenance"]["attacks"]["pgd"]["steps"] == 5


def test_resume_refuses_other_weights_or_radius(problem, tmp_path):
    # Before: only the sample count, attack names and protocol were compared, so a file
    # of another model (or radius) was accepted and its numbers reported.
    model, x, y = problem
    progress = tmp_path / "progress.json"
    evaluate(model, (x, y), {"fgsm": FGSM(model, eps=0.1)}, resume=progress)
    with pytest.raises(FingerprintMismatch, match=r"attacks\.fgsm\.eps: 0\.1 -> 0\.5"):
        evaluate(model, (x, y), {"fgsm": FGSM(model, eps=0.5)}, resume=progress)
    other = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(FingerprintMismatch, match="model_sha256"):
        evaluate(other, (x, y), {"fgsm": FGSM(other, eps=0.1)}, resume=progress)
    progress.write_text("{not json")
    with pytest.raises(ValueError, match="is not a progress file"):
        evaluate(model, (x, y), {"fgsm": FGSM(model, eps=0.1)}, resume=progress)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (3, 7), (50, 100), (199, 200), (200, 200)])
def test_wilson_interval_is_the_closed_form_score_interval(k, n):
    z = 1.959963984540054  # the 97.5 % standard normal quantile
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half), abs=1e-12)
