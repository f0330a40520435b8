"""Long runs that never lie or lose work, tested as a user meets them: in a subprocess.

Fingerprinted resume, fail-fast outputs, clean interrupts (SIGINT/SIGTERM),
integrity of weights files, and the messages of issue "Long runs that never lie
or lose work".  Each test fails on the behaviour before that issue was fixed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from test_cli_commands import ROOT, run_cli  # the tests folder is on sys.path

EVAL = ("evaluate", "--model", "natural", "--samples", "20", "--batch-size", "10")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# --- 1. fingerprints -------------------------------------------------------------------------


def test_resume_of_another_evaluation_exits_2_naming_file_and_fields(tmp_path):
    progress = tmp_path / "progress.json"
    first = run_cli(*EVAL, "--attacks", "fgsm-linf", "--resume", str(progress), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # Another model and another radius: before the fix both were accepted and the old
    # model's numbers were reported under the new model's name.
    other = run_cli(
        "evaluate", "--model", "pgd-linf", "--samples", "20", "--batch-size", "10",
        "--attacks", "fgsm-linf", "--eps-linf", "0.01", "--resume", str(progress),
        cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 2, other.stderr
    message = other.stderr
    assert "--resume" in message and str(progress) in message
    assert "model_sha256" in message and "attacks.FGSM-linf.eps: 0.3 -> 0.01" in message
    assert "To start fresh" in message and "Traceback" not in message


def test_corrupt_resume_file_names_the_file_and_the_option(tmp_path):
    progress = tmp_path / "progress.json"
    progress.write_text('{"total": 3')
    done = run_cli(*EVAL, "--attacks", "fgsm-linf", "--resume", str(progress), cwd=tmp_path)
    assert done.returncode == 2
    assert "--resume" in done.stderr and str(progress) in done.stderr
    assert "JSONDecodeError" not in done.stderr and "Traceback" not in done.stderr


# --- 3. fail fast ----------------------------------------------------------------------------


def test_unwritable_checkpoint_dir_fails_before_any_work(tmp_path):
    # A regular file where a folder is needed: unwritable even for the superuser (for
    # whom chmod-based read-only folders are writable).  Before the fix, train finished
    # an epoch and then failed naming a hidden temporary file.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    args = ("train", "--method", "natural", "--checkpoint-dir", f"{blocker}/ck")
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--checkpoint-dir" in done.stderr and str(blocker) in done.stderr
    assert ".tmp" not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""  # no epoch was trained


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("evaluate", "--model", "natural", "--output", "{blocker}/report"), "--output"),
        (("evaluate", "--model", "natural", "--resume", "{blocker}/p.json"), "--resume"),
        (("attack", "--model", "natural", "--attack", "pgd", "--output", "{blocker}/a.npz"),
         "--output"),
        (("train", "--method", "natural", "--checkpoint-dir", "ck", "--output",
          "{blocker}/w.safetensors"), "--output"),
        (("reproduce", "soae-krylov-dim", "--output", "{blocker}/rep"), "--output"),
        (("demo", "--output", "{blocker}/rep"), "--output"),
    ],
)  # fmt: skip
def test_every_output_option_is_checked_first(args, option, tmp_path, monkeypatch, capsys):
    # In-process (the subprocess path is the test above): the same main() the command runs.
    from krylovadv.cli import main

    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    status = main([a.format(blocker=blocker) for a in args])
    out, err = capsys.readouterr()
    assert status == 2, err
    assert option in err and str(blocker) in err and ".tmp" not in err
    assert out == ""  # nothing was computed (the demo would print its solver table first)
    assert not (tmp_path / "ck").exists()


def test_atomic_write_names_the_destination_not_the_temporary_file(tmp_path):
    from krylovadv.torch.checkpoint import atomic_write_bytes

    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(blocker / "report.md", b"x")
    assert "report.md" in str(caught.value) and ".tmp" not in str(caught.value)


# --- 4. clean interrupts ---------------------------------------------------------------------


def _default_sigint() -> None:
    """Give the child the default SIGINT disposition (run in the child before exec).

    A shell without job control starts background jobs with SIGINT ignored (POSIX), and
    Python then installs no KeyboardInterrupt handler: under ``nohup pytest &`` or a CI
    runner that does this, Ctrl-C would be ignored by design and the run would finish.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_when_started(command, progress, signum, cwd):
    """Start ``command``, wait until the progress file holds a finished attack batch, signal."""
    process = subprocess.Popen(
        [sys.executable, "-m", "krylovadv", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=_env(),
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            state = json.loads(progress.read_text())
        except (OSError, ValueError):
            state = {}
        if any(a["done_batches"] for a in state.get("attacks", {}).values()):
            break
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=240)
    return process.returncode, stdout, stderr


EVAL_LONG = (
    "evaluate", "--model", "natural", "--attacks", "pgd-linf", "--steps", "10",
    "--samples", "120", "--batch-size", "10", "--independent",
)  # fmt: skip


def _interrupt_and_resume(signum, tmp_path):
    progress = tmp_path / "progress.json"
    command = (*EVAL_LONG, "--resume", str(progress), "--output", "interrupted")
    status, _, stderr = _interrupt_when_started(command, progress, signum, tmp_path)
    # Before the fix: a 70-line traceback and nothing saying how to resume.
    assert status == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert f"progress saved to {progress}" in lines[0]
    state = json.loads(progress.read_text())
    finished = len(state["attacks"]["PGD-linf"]["done_batches"])
    assert 1 <= finished < 12  # stopped mid-run, the finished batches kept
    resume = lines[0].split("resume with: ", 1)[1].split()
    assert resume[:2] == ["krylovadv", "evaluate"]
    resumed = subprocess.run(
        [sys.executable, "-m", "krylovadv", *resume[1:]],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    return json.loads((tmp_path / "interrupted" / "report.json").read_text())


def test_ctrl_c_saves_progress_and_prints_the_resume_command(tmp_path):
    report = _interrupt_and_resume(signal.SIGINT, tmp_path)
    assert report["attacks"][0]["attacked"] == report["clean_correct"]


@pytest.mark.slow
def test_sigterm_then_resume_gives_the_uninterrupted_report(tmp_path):
    a = _interrupt_and_resume(signal.SIGTERM, tmp_path)
    fresh = run_cli(*EVAL_LONG, "--output", "fresh", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    b = json.loads((tmp_path / "fresh" / "report.json").read_text())
    assert a["per_attack_robust"] == b["per_attack_robust"] and a["robust"] == b["robust"]


def test_sigterm_raises_keyboard_interrupt_inside_a_run():
    from krylovadv.torch.interrupts import terminate_as_interrupt

    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at the next bytecode boundary
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# --- 2. no silent overwrite, 5. integrity ----------------------------------------------------

TINY_TRAIN = (
    "--train-size", "64", "--epochs", "1", "--eval-subset", "0", "--batch-size", "32",
)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch natural run and its weights file (with the sha256 sidecar)."""
    folder = tmp_path_factory.mktemp("trained")
    done = run_cli("train", "--method", "natural", *TINY_TRAIN, "--checkpoint-dir", "ck",
                   "--output", "w.safetensors", cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_new_run_never_overwrites_another_runs_folder(trained):
    before = _snapshot(trained / "ck")
    other = ("train", "--method", "pgd-at", *TINY_TRAIN, "--checkpoint-dir", "ck")
    refused = run_cli(*other, cwd=trained)
    assert refused.returncode == 2, refused.stderr
    assert "--checkpoint-dir: ck already holds a natural run" in refused.stderr
    assert "--overwrite" in refused.stderr and "--resume" in refused.stderr
    mismatch = run_cli(*other, "--resume", cwd=trained)
    assert mismatch.returncode == 2, mismatch.stderr
    assert "--resume" in mismatch.stderr and "config.method: 'natural' -> 'pgd-at'" in (
        mismatch.stderr
    )
    assert _snapshot(trained / "ck") == before  # checkpoints and history.jsonl untouched


def test_overwrite_replaces_the_run_explicitly(trained, tmp_path):
    import shutil

    shutil.copytree(trained / "ck", tmp_path / "ck")
    done = run_cli("train", "--method", "pgd-at", *TINY_TRAIN, "--steps", "1",
                   "--checkpoint-dir", "ck", "--overwrite", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    newest = sorted((tmp_path / "ck").glob("ckpt-*.json"))[-1]
    assert json.loads(newest.read_text())["method"] == "pgd-at"


def test_weights_with_bytes_overwritten_in_the_middle_are_refused(trained, tmp_path):
    weights = trained / "w.safetensors"
    sidecar = json.loads((trained / "w.safetensors.json").read_text())
    from krylovadv.torch.checkpoint import sha256_file

    assert sidecar["sha256"] == sha256_file(weights)
    good = run_cli("attack", "--model", str(weights), "--attack", "fgsm", "--samples", "4")
    assert good.returncode == 0, good.stderr
    assert f"weights sha256 {sidecar['sha256']}" in good.stdout  # the loaded file's hash
    blob = bytearray(weights.read_bytes())
    middle = len(blob) // 2
    blob[middle : middle + 64] = bytes(64)  # still a well-formed safetensors file
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(bytes(blob))
    (tmp_path / "w.safetensors.json").write_text(json.dumps(sidecar))
    done = run_cli("attack", "--model", str(bad), "--attack", "fgsm", "--samples", "4")
    # Before: loaded and ran (15 % clean accuracy).
    assert done.returncode == 2, done.stdout
    assert f"checksum mismatch for {bad}" in done.stderr and "Traceback" not in done.stderr
    from krylovadv.torch.cli_support import UsageError, load_model

    with pytest.raises(UsageError, match=f"--model: checksum mismatch for {bad}"):
        load_model(f"small-cnn:{bad}")  # the ARCH:FILE form is verified too


def test_resume_extends_epochs_and_logs_each_epoch_once(trained, tmp_path):
    import shutil

    shutil.copytree(trained / "ck", tmp_path / "ck")
    done = run_cli("train", "--method", "natural", *TINY_TRAIN[:2], "--epochs", "2",
                   *TINY_TRAIN[4:], "--checkpoint-dir", "ck", "--resume", cwd=tmp_path)  # fmt: skip
    # Before: refused ("configuration differs in ['epochs']"), and every epoch was logged
    # twice (a raw JSON line on stderr and a formatted one on stdout).
    assert done.returncode == 0, done.stderr
    start = sorted((trained / "ck").glob("ckpt-*.json"))[-1].name
    assert f"resumed from {Path('ck') / start}" in done.stdout  # the file resumed from
    assert "epochs changed from 1 to 2 on resume" in done.stdout
    assert [
        line.split(":")[0] for line in done.stdout.splitlines() if line.startswith("epoch ")
    ] == ["epoch 2"]  # fmt: skip  (epoch 1 was reported by the run that trained it)
    assert "epoch" not in done.stderr


def test_ctrl_c_in_train_names_the_checkpoint_folder_and_the_resume_command(tmp_path):
    command = ["train", "--method", "natural", "--train-size", "64", "--batch-size", "32",
               "--eval-subset", "0", "--epochs", "500", "--checkpoint-dir", "ck"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "krylovadv", *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env(),
        preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not list((tmp_path / "ck").glob("ckpt-*.json")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "last checkpoint in ck" in lines[0]
    assert lines[0].endswith("resume with: krylovadv " + " ".join(command) + " --resume")


# --- 6. progress: one rule everywhere ----------------------------------------------------------


def _attack_stderr(tty):
    """Stderr of a short attack run, with stderr a pseudo-terminal or a pipe."""
    import fcntl
    import pty
    import struct
    import termios

    command = [sys.executable, "-m", "krylovadv", "attack", "--model", "natural", "--attack",
               "pgd", "--samples", "8", "--steps", "2", "--batch-size", "4"]  # fmt: skip
    if not tty:
        return subprocess.run(command, capture_output=True, text=True, env=_env()).stderr
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower, env=_env())
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=240)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_attack_shows_progress_on_a_terminal_and_nothing_in_a_pipe():
    # Before: 12 s of silence for --samples 1000 (no progress display at all).
    assert "batch" in _attack_stderr(tty=True)  # tqdm's "2/2 [..., batch/s]"
    assert _attack_stderr(tty=False) == ""


def test_every_entry_point_defaults_to_the_same_rule(monkeypatch):
    import inspect

    from krylovadv.torch.attacks import Attack
    from krylovadv.torch.evaluate import evaluate
    from krylovadv.torch.progress import progress_enabled
    from krylovadv.torch.training import Trainer, train

    for function in (evaluate, Attack.run, Trainer.__init__, train):
        assert inspect.signature(function).parameters["progress"].default is None, function

    class Terminal:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(sys, "stderr", Terminal(True))
    assert progress_enabled(None) and not progress_enabled(False)
    monkeypatch.setattr(sys, "stderr", Terminal(False))
    assert not progress_enabled(None) and progress_enabled(True)
