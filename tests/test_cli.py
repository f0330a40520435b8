"""The command line, run as a user runs it: in a subprocess."""

import subprocess
import sys

import pytest


def run_cli(*args, cwd=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "krylovadv", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def test_help_lists_the_demo():
    done = run_cli("--help")
    assert done.returncode == 0
    assert "demo" in done.stdout


def test_demo_help_explains_every_option():
    done = run_cli("demo", "--help")
    assert done.returncode == 0
    for option in (
        "--grid",
        "--batch",
        "--seed",
        "--samples",
        "--steps",
        "--device",
        "--output",
        "--no-progress",
        "--solver-only",
    ):
        assert option in done.stdout


def test_solver_demo_runs_and_agrees_with_scipy():
    done = run_cli("demo", "--solver-only", "--grid", "20", "--batch", "4")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "convection-diffusion" in line]
    ours = next(line for line in lines if "krylovadv" in line)
    theirs = next(line for line in lines if "scipy" in line)
    assert "CONVERGED" in ours and "info=0" in theirs
    # Same number of products, column 4 of the table.
    assert ours.split("|")[3].strip() == theirs.split("|")[3].strip()
    assert "batch==loop: True" in done.stdout


@pytest.mark.parametrize("argument", ["--grid=1", "--batch=0", "--samples=0", "--steps=0"])
def test_bad_arguments_fail_with_a_message(argument):
    done = run_cli("demo", argument)
    assert done.returncode == 2
    assert argument.split("=")[0] in done.stderr


def test_unknown_command_fails():
    done = run_cli("frobnicate")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_attack_demo_writes_its_report(tmp_path):
    out = tmp_path / "report"
    done = run_cli(
        "demo",
        "--grid",
        "10",
        "--batch",
        "2",
        "--samples",
        "6",
        "--steps",
        "2",
        "--no-progress",
        "--output",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    for name in ("report.md", "report.json", "robust_accuracy.png", "gradient_norm.png"):
        assert (out / name).stat().st_size > 0
    text = (out / "report.md").read_text()
    for attack in ("FGSM-linf", "PGD-linf", "PGD-l2", "SO-linf", "SO-l2", "SOAE-linf"):
        assert attack in text
    assert "Model `natural`" in text and "Model `pgd-linf`" in text
    # The report states what ran, links its plots and holds the solver table.
    from krylovadv import __version__
    from krylovadv.torch.pretrained import load_registry

    for name in ("natural", "pgd-linf"):
        assert load_registry()["models"][name]["sha256"] in text
    for fact in (
        "split test",
        "6 samples",
        "(subset seed 0)",
        "2 steps",
        "ε = 0.3",
        "protocol: independent",
        f"krylovadv {__version__}",
        "elapsed",
    ):
        assert fact in text, fact
    assert "](robust_accuracy.png)" in text and "](gradient_norm.png)" in text
    assert "| experiment | solver | time_s | matvecs | relative_residual | note |" in text
    assert "| krylovadv.gmres |" in text and "| scipy gmres |" in text  # solver rows


def test_reproduce_lists_every_experiment():
    done = run_cli("reproduce", "--list")
    assert done.returncode == 0, done.stderr
    for name in (
        "so-table1",
        "so-fig1",
        "soae-table1",
        "soae-krylov-dim",
        "soae-eta",
        "soae-iters",
        "soae-psnr",
    ):
        assert name in done.stdout


def test_reproduce_refuses_unknown_experiments_and_scales():
    done = run_cli("reproduce", "table-9")
    assert done.returncode == 2 and "unknown experiment" in done.stderr
    done = run_cli("reproduce", "so-fig1", "--scale", "huge")
    assert done.returncode == 2 and "--scale" in done.stderr
