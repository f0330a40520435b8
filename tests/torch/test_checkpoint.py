"""Checkpoints: round trip, corruption errors, no unpickling, resume after kill -9, zoo sha256."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from krylovadv.torch import pretrained
from krylovadv.torch.checkpoint import (
    CheckpointError,
    capture_rng_state,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    sha256_bytes,
)
from krylovadv.torch.models import build_model
from krylovadv.torch.run_folder import RunFolderError
from krylovadv.torch.training import TrainConfig, Trainer, learning_rate

REPO = Path(__file__).resolve().parents[2]


def _trained(optimizer: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model("small-cnn")
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_round_trip_weights_optimizer_and_rng(tmp_path, optimizer):
    model, opt = _trained(optimizer)
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002 (the legacy global state is what is captured)
    torch.manual_seed(3)
    rng = capture_rng_state()
    path = save_checkpoint(
        tmp_path,
        step=7,
        model_state=model.state_dict(),
        optimizer_state=opt.state_dict(),
        metadata={"method": "natural", "epoch": 1, "rng": rng},
    )
    assert path.name == "ckpt-000000007.json"
    expected = (random.random(), np.random.random(), torch.rand(3))  # noqa: NPY002

    checkpoint = load_checkpoint(path)
    assert checkpoint.global_step == 7 and checkpoint.metadata["method"] == "natural"
    assert checkpoint.metadata["weights_sha256"] and checkpoint.metadata["torch_version"]
    for name, value in model.state_dict().items():
        assert torch.equal(checkpoint.model_state[name], value), name
    fresh_model = build_model("small-cnn")
    fresh_model.load_state_dict(checkpoint.model_state)
    fresh_opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(
        fresh_model.parameters(), lr=0.5
    )
    fresh_opt.load_state_dict(checkpoint.optimizer_state)
    original, loaded = opt.state_dict(), fresh_opt.state_dict()
    assert loaded["param_groups"] == original["param_groups"]
    assert original["state"].keys() == loaded["state"].keys()
    for index, entries in original["state"].items():
        for key, value in entries.items():
            assert torch.equal(
                torch.as_tensor(loaded["state"][index][key]), torch.as_tensor(value)
            ), (index, key)

    random.random(), np.random.random(), torch.rand(5)  # noqa: NPY002 (advance the RNGs)
    restore_rng_state(checkpoint.metadata["rng"])
    again = (random.random(), np.random.random(), torch.rand(3))  # noqa: NPY002
    assert again[0] == expected[0] and again[1] == expected[1]
    assert torch.equal(again[2], expected[2])


def _one_checkpoint(tmp_path: Path) -> Path:
    model, opt = _trained("sgd")
    return save_checkpoint(
        tmp_path, step=3, model_state=model.state_dict(), optimizer_state=opt.state_dict()
    )


def test_tampered_weights_file_is_a_checksum_error(tmp_path):
    path = _one_checkpoint(tmp_path)
    weights = tmp_path / "ckpt-000000003.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # flip bits in the last tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)
    assert latest_checkpoint(tmp_path) is None


def test_truncated_and_missing_files_are_clear_errors(tmp_path):
    path = _one_checkpoint(tmp_path)
    weights = tmp_path / "ckpt-000000003.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=r"checksum mismatch.*truncated"):
        load_checkpoint(path)
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"weights file .* is missing"):
        load_checkpoint(path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        load_checkpoint(tmp_path)


def test_latest_checkpoint_skips_a_half_written_pair(tmp_path):
    model, opt = _trained("sgd")
    for step in (2, 4):
        save_checkpoint(
            tmp_path,
            step=step,
            model_state=model.state_dict(),
            optimizer_state=opt.state_dict(),
            keep_last=None,
        )
    # What a kill between the two writes of a re-written step 4 leaves: metadata
    # whose recorded sha256 does not match the weights file next to it.
    (tmp_path / "ckpt-000000004.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path).name == "ckpt-000000002.json"
    assert load_checkpoint(tmp_path).global_step == 2


def test_keep_last_prunes_old_pairs(tmp_path):
    model, _ = _trained("sgd")
    for step in range(1, 6):
        save_checkpoint(tmp_path, step=step, model_state=model.state_dict(), keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "ckpt-000000004.json",
        "ckpt-000000005.json",
    ]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json"] * 2 + [".safetensors"] * 2


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = _one_checkpoint(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint load tried to unpickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_state


# --- resume after kill -9 ---------------------------------------------------------------


def _run(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "krylovadv", "train", *args, "--json", "--no-progress"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _final_state(directory: Path) -> tuple[dict, dict]:
    checkpoint = load_checkpoint(directory)
    assert checkpoint.metadata["complete"]
    return checkpoint.model_state, checkpoint.metadata


def test_resume_after_kill_reaches_the_same_weights(tmp_path):
    config = TrainConfig(
        method="pgd-at",
        model="small-cnn",
        epochs=3,
        train_size=192,
        batch_size=32,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        eps=0.1,
        steps=2,
        eval_subset=16,
        eval_steps=2,
        seed=3,
        checkpoint_every=1,
        keep_checkpoints=3,
    )
    total = 3 * 6
    killed_dir = tmp_path / "killed"
    (tmp_path / "killed.json").write_text(config.replace(checkpoint_dir=str(killed_dir)).to_json())

    victim = _run(["--config", str(tmp_path / "killed.json")], tmp_path)
    deadline = time.monotonic() + 120
    while not list_checkpoints(killed_dir):
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    time.sleep(0.1)  # kill somewhere later in the run, possibly mid-write
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    survivor = latest_checkpoint(killed_dir)
    assert survivor is not None
    interrupted_at = load_checkpoint(survivor).global_step
    assert 1 <= interrupted_at < total, "the run finished before it was killed"

    resumed = _run(["--config", str(tmp_path / "killed.json"), "--resume"], tmp_path)
    # Meanwhile, the uninterrupted reference run, in this process with the same
    # single thread as the subprocesses (OMP_NUM_THREADS=1).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = Trainer(
            config.replace(checkpoint_dir=str(tmp_path / "reference")), progress=False
        ).fit()
    finally:
        torch.set_num_threads(threads)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["resumed_from"] == interrupted_at and summary["global_step"] == total

    weights, meta = _final_state(killed_dir)
    for name, value in reference.model.state_dict().items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=1e-6, msg=name)
    assert meta["global_step"] == reference.global_step == total
    for got, want in zip(meta["history"], reference.history, strict=True):
        for key in ("train_loss", "train_acc", "clean_acc", "robust_acc", "lr", "eps"):
            assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_resume_refuses_a_different_configuration(tmp_path):
    config = TrainConfig(
        method="natural",
        epochs=1,
        train_size=32,
        batch_size=16,
        eval_subset=0,
        checkpoint_dir=str(tmp_path),
    )
    Trainer(config, progress=False).fit()
    with pytest.raises(CheckpointError, match=r"config\.lr: 0\.05 -> 0\.5") as caught:
        Trainer(config.replace(lr=0.5), progress=False).fit(resume=True)
    assert str(tmp_path) in str(caught.value)
    finished = Trainer(config, progress=False).fit(resume=True)  # nothing left to do
    assert finished.resumed_from == 2 and finished.global_step == 2
    # A new run (no resume) into the folder of another run is refused ...
    with pytest.raises(RunFolderError, match="already holds a training run"):
        Trainer(config.replace(method="pgd-at", steps=1), progress=False).fit()
    assert load_checkpoint(tmp_path).metadata["method"] == "natural"
    # ... unless asked to overwrite it.
    replaced = Trainer(config.replace(method="pgd-at", steps=1), progress=False)
    replaced.fit(overwrite=True)
    assert load_checkpoint(tmp_path).metadata["method"] == "pgd-at"


def test_resume_extends_epochs_and_states_the_schedule(tmp_path):
    config = TrainConfig(
        method="natural", epochs=1, train_size=32, batch_size=16, eval_subset=0,
        lr_schedule="constant", checkpoint_dir=str(tmp_path / "extended"),
    )  # fmt: skip
    Trainer(config, progress=False).fit()
    extended = Trainer(config.replace(epochs=2), progress=False)
    result = extended.fit(resume=True)
    assert result.resumed_from == 2 and result.global_step == 4
    assert "epochs changed from 1 to 2" in extended.schedule_note
    assert "uninterrupted 2-epoch run" in extended.schedule_note
    # A constant schedule does not depend on the length: the same weights as 2 epochs at once.
    straight = Trainer(
        config.replace(epochs=2, checkpoint_dir=str(tmp_path / "straight")), progress=False
    ).fit()
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(result.model.state_dict()[name], value, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="already finished 2 epoch"):
        Trainer(config.replace(epochs=1), progress=False).fit(resume=True)
    with pytest.raises(CheckpointError, match="lr_schedule"):  # another schedule: refused
        Trainer(config.replace(epochs=3, lr_schedule="cosine"), progress=False).fit(resume=True)
    # A cosine schedule depends on the length: recomputed for the new one, and said so.
    cosine = config.replace(lr_schedule="cosine", checkpoint_dir=str(tmp_path / "cosine"))
    Trainer(cosine, progress=False).fit()
    longer = Trainer(cosine.replace(epochs=2), progress=False)
    history = longer.fit(resume=True).history
    assert "recomputed for 2 epochs from epoch 2 on" in longer.schedule_note
    assert history[1]["lr"] == pytest.approx(learning_rate(cosine.replace(epochs=2), 3, 2))


def test_trainer_checks_the_checkpoint_dir_before_any_work(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    config = TrainConfig(method="natural", epochs=1, checkpoint_dir=str(blocker / "ck"))
    with pytest.raises(ValueError, match=r"checkpoint_dir: .*blocker"):
        Trainer(config, progress=False)


# --- pre-trained weights (the model zoo) ----------------------------------------------


def test_every_registry_entry_matches_its_file():
    registry = pretrained.load_registry()
    assert registry["models"], "the package ships no zoo models"
    for name, entry in registry["models"].items():
        path = pretrained.WEIGHTS_DIR / entry["file"]
        assert path.is_file(), f"{name}: {path} missing"
        assert sha256_bytes(path.read_bytes()) == entry["sha256"], name
        assert entry["command"].startswith("krylovadv zoo build")
        metrics = entry["metrics"]
        assert metrics["count"] > 0
        # Accuracies are counts over `count` samples (robust <= clean).
        clean = metrics["clean_acc"] * metrics["count"]
        robust = metrics["robust_acc"] * metrics["count"]
        assert abs(clean - round(clean)) < 1e-6 and abs(robust - round(robust)) < 1e-6, metrics
        assert 0 <= round(robust) <= round(clean) <= metrics["count"]
    assert all(pretrained.verify().values())
    for needed in ("natural", "pgd-linf"):  # the demo's models
        assert needed in registry["models"]


def test_load_pretrained_verifies_the_checksum(tmp_path):
    name = pretrained.available_models()[0]
    model = pretrained.load_pretrained(name)
    assert not model.training
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    entry = pretrained.load_registry()["models"][name]
    registry = {"format": 1, "models": {name: entry}}
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    data = bytearray((pretrained.WEIGHTS_DIR / entry["file"]).read_bytes())
    data[-1] ^= 0x01
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    with pytest.raises(pretrained.ZooError, match="checksum mismatch"):
        pretrained.load_pretrained(name, registry=tmp_path / "registry.json")
    assert pretrained.verify(tmp_path / "registry.json") == {name: False}
    (tmp_path / entry["file"]).unlink()
    with pytest.raises(pretrained.ZooError, match="missing"):
        pretrained.load_pretrained(name, registry=tmp_path / "registry.json")
    with pytest.raises(pretrained.ZooError, match="unknown zoo model"):
        pretrained.load_pretrained("no-such-model")


def test_weights_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("small-cnn")
    config = TrainConfig(method="natural")
    digest = pretrained.save_weights_file(tmp_path / "w.safetensors", model, config=config)
    again = pretrained.load_weights_file(tmp_path / "w.safetensors", sha256=digest)
    for name, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], value)
    with pytest.raises(pretrained.ZooError, match="checksum mismatch"):
        pretrained.load_weights_file(tmp_path / "w.safetensors", sha256="0" * 64)


def test_read_verified_bytes_checks_before_returning(tmp_path):
    from krylovadv.torch.checkpoint import read_verified_bytes, sha256_bytes
    from krylovadv.torch.pretrained import ZooError

    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    messages = {"missing": "gone", "mismatch": lambda digest, blob: f"{digest}/{len(blob)}"}
    assert read_verified_bytes(path, sha256_bytes(b"weights"), **messages) == b"weights"
    assert read_verified_bytes(path, None, **messages) == b"weights"
    with pytest.raises(ZooError, match=f"^{sha256_bytes(b'weights')}/7$"):
        read_verified_bytes(path, sha256_bytes(b"other"), error=ZooError, **messages)
    with pytest.raises(CheckpointError, match=r"^gone$"):
        read_verified_bytes(tmp_path / "absent.bin", None, **messages)
