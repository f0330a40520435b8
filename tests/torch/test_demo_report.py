"""The demo's plots: Wilson intervals as error bars, visible zero bars, integer iteration ticks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from krylovadv.torch.demo import DemoResult, accuracy_figure, gradient_figure
from krylovadv.torch.evaluate import AttackRecord, EvaluationReport, wilson_interval


def _report(robust_after_attack: int) -> EvaluationReport:
    total = 20
    still = np.zeros(total, dtype=bool)
    still[:robust_after_attack] = True
    return EvaluationReport(
        total=total,
        clean_correct=18,
        attacks=[AttackRecord(name="PGD-linf", norm="linf", eps=0.3)],
        robust=still,
        per_attack_robust={"PGD-linf": still},
        cascade=False,
    )


@pytest.fixture
def result():
    reports = {"natural": _report(0), "pgd-linf": _report(11)}  # a 0 % bar and an 55 % bar
    traces = {"natural": {"PGD-linf": [1.0, 0.5, 0.25]}}
    return DemoResult(reports, traces, None, 1.0)


def test_accuracy_bars_carry_wilson_intervals_and_labels(result):
    fig = accuracy_figure(result)
    ax = fig.axes[0]
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(errorbars) == len(bars) == 2
    # natural model: clean 18/20, PGD 0/20; each error bar spans its Wilson interval.
    segments = errorbars[0].lines[2][0].get_segments()
    for (low_seg, high_seg), k in zip(((s[0][1], s[1][1]) for s in segments), (18, 0), strict=True):
        low, high = wilson_interval(k, 20)
        assert (low_seg, high_seg) == pytest.approx((100 * low, 100 * high))
    # The 0 % bar has no height but a visible label.
    assert bars[0].patches[1].get_height() == 0
    assert "0" in [t.get_text() for t in ax.texts]
    plt.close(fig)


def test_iteration_ticks_are_integers(result):
    fig = gradient_figure(result)
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)
