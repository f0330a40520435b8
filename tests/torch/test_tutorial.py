"""The tutorial script runs and its claims hold (docs/examples/krylov_attack.py)."""

import contextlib
import io
import runpy
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "krylov_attack.py"


def test_tutorial_script_runs_and_its_claims_hold():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model runs fastest on one thread
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            namespace = runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    text = output.getvalue()
    assert "g^T delta >= 0 for all samples: True" in text
    result = namespace["result"]
    assert result.converged.all()
    assert result.iterations.max() <= 30  # rank <= 9: well inside one restart cycle
    report = namespace["report"]
    assert report.robust_accuracy <= min(report.accuracy(n) for n in report.per_attack_robust)
    assert all(rec.invalid == 0 for rec in report.attacks)
