"""The structural facts of docs/input-hessian.rst, re-measured (reduced): the page cannot go stale.

The page's numbers come from ``docs/tools/measure_input_hessian.py``; this test
runs the same functions on fewer digits and checks the facts the code relies on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "tools" / "measure_input_hessian.py"


@pytest.fixture(scope="module")
def measure():
    spec = importlib.util.spec_from_file_location("measure_input_hessian", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def structure(measure):
    return measure.structure(count=2)


def test_input_hessian_is_the_gauss_newton_form_with_rank_at_most_k_minus_1(structure):
    for row in structure["rows"]:
        # K = 10 classes: diag p - pp^T has rank 9, so H = J^T(diag p - pp^T)J has rank <= 9.
        assert 1 <= row["rank"] <= 9, row
        # Bounds: float64 rounding, amplified where H is tiny (a confidently classified digit,
        # p near one-hot); the page's run has the worst digit at 2e-11.
        assert row["gn_rel"] < 1e-8, row  # a.e. equal to the Gauss-Newton form
        assert row["asymmetry"] < 1e-10, row
        assert row["null_max_rel"] < 1e-10, row  # the other 775 eigenvalues are rounding noise


def test_input_hessian_is_psd_and_the_gradient_lies_in_its_range(structure):
    for row in structure["rows"]:
        assert row["min_eig_rel"] > -1e-10, row
        assert row["grad_outside_range"] < 1e-8, row  # H delta = g is consistent


def test_the_library_operator_matches_the_full_hessian(structure):
    for row in structure["rows"]:
        assert row["library_rel"] < 1e-8, row


def test_batch_hessian_is_block_diagonal_in_eval_mode(measure):
    result = measure.block_diagonality(batch=3)
    assert result["own_block_norm"] > 0
    assert result["other_blocks_max_abs"] == 0.0  # exactly: no coupling between samples


def test_qian_newton_step_is_an_ascent_direction(measure):
    for row in measure.newton_sign(count=1)["rows"]:
        assert row["g_dot_delta"] > 0 and row["cos_g_delta"] > 0
        assert row["loss_change_plus"] > 0 > row["loss_change_minus"]


def test_forward_differences_fail_in_float32_where_float64_is_accurate(measure):
    result = measure.fd_accuracy(count=2, vectors=1, noise=0.01)
    single, double = result["float32"][1e-5], result["float64"][1e-5]
    assert double["median"] < 1e-4
    assert single["median"] > 100 * double["median"]
    clean = measure.fd_accuracy(count=1, vectors=1)  # exact max-pool ties at clean digits
    assert clean["float64"][1e-5]["median"] > 1.0
