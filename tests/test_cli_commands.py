"""The ``attack``, ``evaluate`` and ``train`` commands, run as a user runs them: in a subprocess."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=300):
    # Run this checkout's package whatever the working directory (and wherever an
    # editable install points).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "krylovadv", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


HELP_OPTIONS = {
    "attack": (
        "--model",
        "--attack",
        "--norm",
        "--eps",
        "--steps",
        "--samples",
        "--data",
        "--split",
        "--seed",
        "--batch-size",
        "--device",
        "--output",
    ),
    "evaluate": (
        "--model",
        "--attacks",
        "--eps-linf",
        "--eps-l2",
        "--steps",
        "--samples",
        "--data",
        "--split",
        "--seed",
        "--cascade",
        "--independent",
        "--resume",
        "--batch-size",
        "--device",
        "--output",
        "--no-progress",
    ),
    "train": (
        "--method",
        "--model",
        "--epochs",
        "--eps",
        "--norm",
        "--steps",
        "--batch-size",
        "--optimizer",
        "--lr",
        "--seed",
        "--train-size",
        "--eval-subset",
        "--eval-steps",
        "--ensemble-source",
        "--device",
        "--checkpoint-dir",
        "--resume",
        "--output",
        "--no-progress",
    ),
}


def test_top_level_help_lists_the_commands():
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("demo", "attack", "evaluate", "train"):
        assert command in done.stdout


@pytest.mark.parametrize("command", sorted(HELP_OPTIONS))
def test_help_explains_every_option(command):
    done = run_cli(command, "--help")
    assert done.returncode == 0, done.stderr
    for option in HELP_OPTIONS[command]:
        assert option in done.stdout, option
    assert "%%" not in done.stdout  # argparse prints descriptions verbatim


def test_version_and_help_texts_follow_the_code(monkeypatch):
    import krylovadv
    from krylovadv.cli import build_parser
    from krylovadv.torch.cli_support import ATTACKS
    from krylovadv.torch.zoo import available_models

    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"krylovadv {krylovadv.__version__}"
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping (argparse breaks at hyphens)
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    text = " ".join(sub["evaluate"].format_help().split())
    assert "95 %%" not in text and "95 % Wilson" in text
    # The zoo list of --help is the registry's, whatever it holds (trades-l2 was missing).
    listed = text.split("a zoo name (", 1)[1].split(")", 1)[0].split(", ")
    assert listed == available_models()
    for name in ATTACKS:  # APGD was in the API but not in the CLI
        assert name in text
    # The torch-free parser's name lists are the registries' (they cannot drift).
    from krylovadv.cli.parser import ATTACK_NAMES, TRAIN_METHODS
    from krylovadv.torch.training import METHODS

    assert set(ATTACK_NAMES) == set(ATTACKS) and set(TRAIN_METHODS) == set(METHODS)


def test_apgd_runs_from_the_command_line():
    done = run_cli("attack", "--model", "natural", "--attack", "apgd", "--samples", "4",
                   "--steps", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "attack: apgd linf" in done.stdout


@pytest.fixture(scope="module")
def pgd_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("attack") / "adv.npz"
    done = run_cli(
        "attack",
        "--model",
        "natural",
        "--attack",
        "pgd",
        "--samples",
        "8",
        "--steps",
        "2",
        "--eps",
        "0.3",
        "--output",
        str(out),
    )
    return done, out


def test_attack_on_a_zoo_model_prints_accuracy(pgd_run):
    done, out = pgd_run
    assert done.returncode == 0, done.stderr
    assert "clean accuracy:" in done.stdout and "robust accuracy:" in done.stdout
    clean = float(done.stdout.split("clean accuracy:")[1].split()[0])
    robust = float(done.stdout.split("robust accuracy:")[1].split()[0])
    # Recompute both from the written examples with the same zoo model, in-process:
    # clean = correct at x; robust = correct at x and at x_adv.
    from krylovadv.torch.cli_support import load_model

    model, _, _ = load_model("natural")
    with np.load(out, allow_pickle=False) as archive:
        x, x_adv, y = (torch.from_numpy(archive[k]) for k in ("x", "x_adv", "y"))
    with torch.no_grad():
        right = model(x).argmax(1) == y
        right_adv = model(x_adv).argmax(1) == y
    assert clean == pytest.approx(right.float().mean().item(), abs=5e-5)
    assert robust == pytest.approx((right & right_adv).float().mean().item(), abs=5e-5)
    assert "Traceback" not in done.stderr


def test_attack_output_is_an_npz_inside_the_ball(pgd_run):
    done, out = pgd_run
    assert done.returncode == 0, done.stderr
    with np.load(out, allow_pickle=False) as archive:
        x, x_adv, y = archive["x"], archive["x_adv"], archive["y"]
        assert archive["valid"].all()
    assert x_adv.shape == x.shape == (8, 1, 28, 28) and y.shape == (8,)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert np.abs(x_adv - x).max() <= 0.3 + 1e-6


def test_attack_soae_prints_its_diagnostics():
    done = run_cli(
        "attack", "--model", "pgd-linf", "--attack", "SOAE", "--samples", "4", "--steps", "1"
    )
    assert done.returncode == 0, done.stderr
    assert "krylov_dim" in done.stdout


def test_evaluate_writes_consistent_reports(tmp_path):
    out = tmp_path / "report"
    done = run_cli(
        "evaluate",
        "--model",
        "natural",
        "--attacks",
        "fgsm-linf,pgd-linf,pgd-l2",
        "--samples",
        "8",
        "--steps",
        "2",
        "--independent",
        "--no-progress",
        "--output",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "| worst case |" in done.stdout
    assert "PGD-linf" in (out / "report.md").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["total"] == 8 and report["cascade"] is False
    rows = {row["attack"]: row["accuracy"] for row in report["rows"]}
    assert set(rows) == {"clean", "FGSM-linf", "PGD-linf", "PGD-l2", "worst case"}
    for name, accuracy in rows.items():
        assert rows["worst case"] <= accuracy, name


def test_train_then_attack_the_trained_weights(tmp_path):
    weights = tmp_path / "model.safetensors"
    checkpoints = tmp_path / "ckpt"
    done = run_cli(
        "train",
        "--method",
        "natural",
        "--model",
        "small-cnn",
        "--epochs",
        "1",
        "--train-size",
        "64",
        "--batch-size",
        "32",
        "--eval-subset",
        "16",
        "--eval-steps",
        "2",
        "--checkpoint-dir",
        str(checkpoints),
        "--output",
        str(weights),
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert "epoch 1:" in done.stdout and "clean acc" in done.stdout
    assert "robust acc" in done.stdout
    assert list(checkpoints.glob("ckpt-*.json")) and weights.stat().st_size > 0
    done = run_cli(
        "attack", "--model", f"small-cnn:{weights}", "--attack", "fgsm", "--samples", "8"
    )
    assert done.returncode == 0, done.stderr
    assert "robust accuracy:" in done.stdout


def test_attack_loads_a_torchscript_file(tmp_path):
    from krylovadv.torch.zoo import load_pretrained

    path = tmp_path / "natural.pt"
    model = load_pretrained("natural")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
        torch.jit.trace(model, torch.zeros(1, 1, 28, 28)).save(str(path))
    done = run_cli("attack", "--model", str(path), "--attack", "fgsm", "--samples", "8")
    assert done.returncode == 0, done.stderr
    assert "torchscript" in done.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("attack", "--model", "natural", "--attack", "cw"), "--attack"),
        (
            ("attack", "--model", "small-cnn:/no/such/file.safetensors", "--attack", "pgd"),
            "--model",
        ),
        (("attack", "--model", "no-such-zoo-model", "--attack", "pgd"), "--model"),
        (("attack", "--model", "natural", "--attack", "pgd", "--eps", "-0.1"), "--eps"),
        (("attack", "--model", "natural", "--attack", "pgd", "--output", "adv.pt"), "--output"),
        (("evaluate", "--model", "natural", "--attacks", "pgd-l3"), "--attacks"),
        (("train", "--method", "natural", "--checkpoint-dir", "ck", "--model", "vgg"), "--model"),
        # Before: silently clamped to the 2,000 test digits.
        (("attack", "--model", "natural", "--attack", "fgsm", "--samples", "100000"),
         "--samples: 100000 samples asked for, but the test split of mnist10k holds 2000"),
        # Before: ran without a word (every image is inside an l-inf ball of radius 30).
        (("attack", "--model", "natural", "--attack", "fgsm", "--eps", "30"),
         "--eps: 30 is larger than 1"),
        (("evaluate", "--model", "natural", "--eps-l2", "29"),
         "--eps-l2: 29 is larger than sqrt(784)"),
        # Before: named the field TrainConfig.ensemble_sources.
        (("train", "--method", "ensemble", "--checkpoint-dir", "ck"), "needs --ensemble-source"),
    ],
)  # fmt: skip
def test_wrong_values_exit_2_naming_the_option(args, option, tmp_path):
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert option in done.stderr
    assert "Traceback" not in done.stderr and "TrainConfig" not in done.stderr


def test_truncated_weights_file_is_one_clear_sentence(tmp_path):
    source = ROOT / "krylovadv" / "torch" / "weights" / "small-cnn-natural.safetensors"
    blob = source.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(blob[: len(blob) // 2])
    sentence = f"--model: {path} is not a readable safetensors file (truncated or corrupt)."
    done = run_cli("attack", "--model", str(path), "--attack", "fgsm", "--samples", "4")
    assert done.returncode == 2
    # Before: "... file not fully covered Pass ARCH:... with an architecture of [...]".
    assert sentence in done.stderr and "Pass ARCH" not in done.stderr
    from krylovadv.torch.cli_support import UsageError, load_model

    with pytest.raises(UsageError) as caught:
        load_model(f"small-cnn:{path}")  # the ARCH:FILE form: the same sentence
    assert str(caught.value).startswith(sentence)
