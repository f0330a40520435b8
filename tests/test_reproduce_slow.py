"""The full quick-scale reproduction (minutes): run by ``nox -s slow``, not by CI."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_experiment_runs_at_quick_scale_and_the_page_builds(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_reproducing_page", ROOT / "docs" / "tools" / "make_reproducing_page.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = module.build(docs=tmp_path).read_text(encoding="utf-8")
    from krylovadv.torch.reproduce import EXPERIMENTS

    for name in EXPERIMENTS:
        assert f"``krylovadv reproduce {name}``" in page
    assert page.count("**Verdict: ") == len(EXPERIMENTS)
    for image in tmp_path.glob("reproducing/*/*.png"):
        assert image.stat().st_size > 0
