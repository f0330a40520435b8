"""DDP: one epoch on 2 gloo processes equals one process over the same global batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from krylovadv.torch.checkpoint import load_checkpoint
from krylovadv.torch.training import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)


@pytest.mark.parametrize("momentum", [0.9])
def test_two_gloo_processes_match_one_process(tmp_path, momentum):
    config = TrainConfig(
        method="natural",
        model="small-cnn",
        epochs=1,
        train_size=96,
        batch_size=32,
        optimizer="sgd",
        lr=0.1,
        momentum=momentum,
        weight_decay=1e-4,
        eval_subset=20,
        eval_steps=2,
        seed=11,
        checkpoint_dir=str(tmp_path / "ddp"),
    )
    (tmp_path / "config.json").write_text(config.to_json())
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "krylovadv",
            "train",
            "--config",
            str(tmp_path / "config.json"),
            "--json",
            "--no-progress",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    # Meanwhile, the same run in this process: 3 global batches of 32.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = Trainer(
            config.replace(checkpoint_dir=str(tmp_path / "single")), progress=False
        ).fit()
    finally:
        torch.set_num_threads(threads)
    out, err = launcher.communicate(timeout=300)
    assert launcher.returncode == 0, err[-3000:]
    summaries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only rank 0 reports (and writes checkpoints)

    checkpoint = load_checkpoint(tmp_path / "ddp")
    assert checkpoint.metadata["world_size"] == 2
    assert checkpoint.global_step == single.global_step == 3
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(checkpoint.model_state[name], value, rtol=0, atol=1e-5, msg=name)
    ddp_record, single_record = checkpoint.metadata["history"][0], single.history[0]
    assert ddp_record["train_loss"] == pytest.approx(single_record["train_loss"], abs=1e-5)
    assert ddp_record["train_acc"] == single_record["train_acc"]
    assert ddp_record["clean_acc"] == pytest.approx(single_record["clean_acc"], abs=1e-12)
    assert ddp_record["eval_count"] == 20
