"""The trainer: one loop for every method, seeded, checkpointed, resumable, DDP-aware."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from ...data import MNIST10K_SPLIT_SEED, MNIST10K_TEST_SIZE, ImageData, load_mnist10k
from ..checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from ..models import build_model
from .config import RESUMABLE_CHANGES, SUBSET_SEED, TrainConfig
from .distributed import setup_distributed
from .evaluation import evaluate_accuracy
from .methods import METHODS, StepContext
from .schedules import learning_rate, step_seed, warmup_eps
from .sources import load_source_model

__all__ = ["CHECKPOINT_KIND", "TrainResult", "Trainer", "train"]

logger = logging.getLogger(__name__)

#: ``kind`` of the trainer's checkpoints (the metadata's tag; kept from the
#: module that wrote them first, so older checkpoints resume).
CHECKPOINT_KIND = "krylovadv.torch.train"


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (plain module, eval mode).
    config : TrainConfig
        The configuration.
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``train_acc`` (on the
        training inputs, adversarial for adversarial methods), ``clean_acc``,
        ``robust_acc``, ``eval_count``, ``lr``, ``eps``, ``time_s``.
    global_step : int
        Optimizer steps taken (in total, across resumptions).
    checkpoint : Path or None
        Last checkpoint written or resumed from.
    resumed_from : int or None
        Global step of the checkpoint the run resumed from.
    """

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, Any]]
    global_step: int
    checkpoint: Path | None = None
    resumed_from: int | None = None


class Trainer:
    """Adversarial training of one model by one method, seeded and resumable.

    Parameters
    ----------
    config : TrainConfig
        All hyper-parameters.
    train_data : ImageData, optional
        Training data (default: the train split of ``config.dataset``).
    eval_data : ImageData, optional
        Held-out data of the per-epoch evaluation (default: the test split);
        a fixed random subset of ``config.eval_subset`` samples is used.
    progress : bool
        Show tqdm progress bars (only on a TTY, only on rank 0).
    sources : sequence of torch.nn.Module, optional
        Source models of ``ensemble`` (default: loaded from
        ``config.ensemble_sources``).

    Attributes
    ----------
    model : torch.nn.Module
        The model being trained (never the DDP wrapper).
    optimizer : torch.optim.Optimizer
        Its optimizer (the learning rate is set before every step).
    steps_per_epoch : int
        Optimizer steps per epoch :math:`S`.
    device : torch.device
        Where the model and the data live.

    Examples
    --------
    >>> from krylovadv.torch.training import TrainConfig, Trainer
    >>> config = TrainConfig(method="natural", epochs=1, train_size=64, batch_size=32,
    ...                      eval_subset=0)
    >>> result = Trainer(config, progress=False).fit()
    >>> result.global_step
    2
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        train_data: ImageData | None = None,
        eval_data: ImageData | None = None,
        progress: bool = True,
        sources: Sequence[nn.Module] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.dist = setup_distributed(config.device)
        device = config.device
        if self.dist.enabled and device.startswith("cuda"):
            device = f"cuda:{self.dist.local_rank}"
            torch.cuda.set_device(device)
        self.device = torch.device(device)
        if config.batch_size % self.dist.world_size != 0:
            raise ValueError(
                f"batch_size {config.batch_size} must be divisible by the number "
                f"of processes {self.dist.world_size}."
            )
        self.progress = bool(progress) and self.dist.is_main
        self.method = METHODS[config.method]
        self.train_data, self.eval_data = self._data(train_data, eval_data)
        self.images = torch.as_tensor(self.train_data.images).to(self.device)
        self.labels = torch.as_tensor(self.train_data.labels, dtype=torch.int64).to(self.device)
        held_out = (
            self.eval_data.subset(config.eval_subset, seed=SUBSET_SEED)
            if config.eval_subset > 0
            else None
        )
        self.eval_images = torch.as_tensor(
            held_out.images if held_out is not None else self.eval_data.images[:0]
        ).to(self.device)
        self.eval_labels = torch.as_tensor(
            held_out.labels if held_out is not None else self.eval_data.labels[:0],
            dtype=torch.int64,
        ).to(self.device)
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, **config.model_kwargs).to(self.device)
        self.optimizer = self._optimizer()
        self.sources = list(sources) if sources is not None else self._load_sources()
        self.steps_per_epoch = len(self.epoch_batches(0))

    # -- construction ------------------------------------------------------------------
    def _data(
        self, train_data: ImageData | None, eval_data: ImageData | None
    ) -> tuple[ImageData, ImageData]:
        config = self.config
        if config.dataset == "custom" and train_data is None:
            raise ValueError("dataset='custom' needs train_data (and eval_data).")
        if train_data is None:
            train_data = load_mnist10k("train")
        if eval_data is None:
            eval_data = load_mnist10k("test") if config.dataset == "mnist10k" else train_data
        if config.train_size is not None:
            train_data = train_data.subset(config.train_size, seed=SUBSET_SEED)
        return train_data, eval_data

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        params = self.model.parameters()
        if c.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
            )
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)

    def _load_sources(self) -> list[nn.Module]:
        if not self.method.uses_sources:
            return []
        models = []
        for spec in self.config.ensemble_sources:
            model = load_source_model(spec, device=self.device)
            for p in model.parameters():
                p.requires_grad_(False)
            models.append(model.eval())
        return models

    def split_info(self) -> dict[str, Any]:
        """Describe the data of the run (recorded in checkpoints)."""
        info: dict[str, Any] = {
            "dataset": self.config.dataset,
            "train": self.train_data.name,
            "train_count": len(self.train_data),
            "eval": self.eval_data.name,
            "eval_count": int(self.eval_labels.shape[0]),
        }
        if self.config.dataset == "mnist10k":
            info.update(
                {
                    "split_seed": MNIST10K_SPLIT_SEED,
                    "test_size": MNIST10K_TEST_SIZE,
                    "split": "krylovadv.data.mnist10k_split (stratified 8000/2000)",
                }
            )
        return info

    # -- data order ----------------------------------------------------------------------
    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        r"""Return this rank's index batches of ``epoch``.

        The permutation is :class:`DistributedSampler`'s (``randperm`` seeded by
        ``seed + epoch``); rank :math:`r` of :math:`W` takes positions
        :math:`r, r + W, \dots`, so its :math:`k`-th batch of :math:`B/W` indices
        and the other ranks' together are exactly positions
        :math:`[kB, (k+1)B)` of the permutation: the single-process global batch.
        (If :math:`W` does not divide the data, the sampler pads by repeating
        indices, and the equality holds up to the last batch.)

        Parameters
        ----------
        epoch : int
            0-based epoch.

        Returns
        -------
        list of torch.Tensor
            int64 indices into the training data, :math:`B/W` per batch (the
            last may be shorter unless ``drop_last``).
        """
        sampler = DistributedSampler(
            range(len(self.train_data)),  # type: ignore[arg-type]
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=self.config.seed,
            drop_last=False,
        )
        sampler.set_epoch(epoch)
        indices = torch.tensor(list(sampler), dtype=torch.int64)
        per_rank = self.config.batch_size // self.dist.world_size
        batches = list(torch.split(indices, per_rank))
        if self.config.drop_last and batches and batches[-1].numel() < per_rank:
            batches.pop()
        return batches

    # -- checkpoints ---------------------------------------------------------------------
    def _save(
        self,
        *,
        epoch: int,
        step_in_epoch: int,
        global_step: int,
        history: list[dict[str, Any]],
        epoch_stats: dict[str, float],
    ) -> Path | None:
        if self.config.checkpoint_dir is None or not self.dist.is_main:
            return None
        metadata = {
            "kind": CHECKPOINT_KIND,
            "method": self.config.method,
            "config": self.config.to_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "complete": epoch >= self.config.epochs,
            "epoch_stats": epoch_stats,
            "history": history,
            "rng": capture_rng_state(),
            "data": self.split_info(),
            "world_size": self.dist.world_size,
        }
        path = save_checkpoint(
            self.config.checkpoint_dir,
            step=global_step,
            model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            metadata=metadata,
            keep_last=self.config.keep_checkpoints,
        )
        log = [json.dumps(record, sort_keys=True) for record in history]
        atomic_write_bytes(
            Path(self.config.checkpoint_dir) / "history.jsonl",
            ("\n".join(log) + "\n" if log else "").encode("utf-8"),
        )
        return path

    def _restore(self, path: Path) -> dict[str, Any]:
        checkpoint = load_checkpoint(path)
        meta = checkpoint.metadata
        saved = TrainConfig.from_dict(meta["config"]).to_dict()
        current = self.config.to_dict()
        differ = sorted(
            k for k in current if current[k] != saved.get(k) and k not in RESUMABLE_CHANGES
        )
        if differ:
            raise CheckpointError(
                f"cannot resume from {path}: its configuration differs in {differ} "
                f"(checkpoint: {[saved.get(k) for k in differ]}, now: "
                f"{[current[k] for k in differ]}). Use another checkpoint_dir for a new run."
            )
        if meta.get("steps_per_epoch") != self.steps_per_epoch:
            raise CheckpointError(
                f"cannot resume from {path}: {meta.get('steps_per_epoch')} "
                f"steps per epoch there, {self.steps_per_epoch} now (different "
                "data or batch size)."
            )
        self.model.load_state_dict(
            {k: v.to(self.device) for k, v in checkpoint.model_state.items()}
        )
        if checkpoint.optimizer_state is not None:
            self.optimizer.load_state_dict(checkpoint.optimizer_state)
        restore_rng_state(meta["rng"])
        return meta

    # -- training --------------------------------------------------------------------------
    def _context(self, global_step: int) -> StepContext:
        c = self.config
        eps = warmup_eps(c.eps, c.eps_warmup_epochs, global_step, self.steps_per_epoch)
        alpha = c.step_size * (eps / c.eps if c.eps > 0 else 1.0)
        return StepContext(
            model=self.model,
            config=c,
            eps=eps,
            alpha=alpha,
            global_step=global_step,
            seed=step_seed(c.seed, global_step, self.dist.rank),
            sources=self.sources,
        )

    def train_step(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, global_step: int
    ) -> tuple[float, int]:
        """One optimizer step on a batch; return ``(loss, correct)`` of this rank.

        Parameters
        ----------
        net : torch.nn.Module
            :attr:`model` or its DDP wrapper (the outer forward goes through it).
        x, y : torch.Tensor
            This rank's batch.
        global_step : int
            0-based step (sets the learning rate, ε and the seeds).

        Returns
        -------
        loss : float
            The batch's outer loss.
        correct : int
            Correctly classified training inputs (adversarial ones where the
            method makes them).
        """
        ctx = self._context(global_step)
        lr = learning_rate(self.config, global_step, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x_adv = self.method.perturb(ctx, x, y).detach()
        self.model.train()
        loss, logits = self.method.loss(ctx, net, x, x_adv, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), int((logits.detach().argmax(1) == y).sum())

    def evaluate(self, epoch: int) -> dict[str, Any]:
        """Clean and PGD accuracy on the held-out subset (sharded over DDP ranks).

        Parameters
        ----------
        epoch : int
            Seeds the attack.

        Returns
        -------
        dict
            ``clean_acc``, ``robust_acc``, ``eval_count`` (``None`` accuracies
            when ``eval_subset`` is 0).
        """
        c = self.config
        n = int(self.eval_labels.shape[0])
        if n == 0:
            return {"clean_acc": None, "robust_acc": None, "eval_count": 0}
        shard = slice(self.dist.rank, None, self.dist.world_size)
        images, labels = self.eval_images[shard], self.eval_labels[shard]
        if images.shape[0] > 0:
            counts = evaluate_accuracy(
                self.model,
                images,
                labels,
                norm=c.norm,
                eps=c.eps,
                steps=c.eval_steps,
                seed=step_seed(c.seed, epoch, self.dist.rank, 1),
            )
            tally = torch.tensor(
                [counts["clean_correct"], counts["robust_correct"]], dtype=torch.int64
            )
        else:
            tally = torch.zeros(2, dtype=torch.int64)
        tally = self.dist.sum(tally, self.device)
        return {"clean_acc": int(tally[0]) / n, "robust_acc": int(tally[1]) / n, "eval_count": n}

    def fit(self, resume: bool = False) -> TrainResult:
        """Train for ``config.epochs`` epochs (or finish a checkpointed run).

        Parameters
        ----------
        resume : bool
            Continue from the newest valid checkpoint of ``config.checkpoint_dir``
            (if there is none, start from scratch).  The resumed run replays the
            same data order, attacks and learning rates, so it reaches the same
            final weights as an uninterrupted run.

        Returns
        -------
        TrainResult
        """
        c = self.config
        epoch, start_k, global_step = 0, 0, 0
        history: list[dict[str, Any]] = []
        stats = {"loss_sum": 0.0, "correct": 0, "count": 0, "time_s": 0.0}
        last_path: Path | None = None
        resumed_from = None
        if resume and c.checkpoint_dir is not None:
            path = latest_checkpoint(c.checkpoint_dir)
            if path is not None:
                meta = self._restore(path)
                epoch, start_k = int(meta["epoch"]), int(meta["step_in_epoch"])
                global_step = int(meta["global_step"])
                history = list(meta["history"])
                stats = dict(meta["epoch_stats"])
                last_path, resumed_from = path, global_step
                if self.dist.is_main:
                    logger.info(
                        "resumed from %s (epoch %d, step %d of the epoch, global step %d)",
                        path,
                        epoch,
                        start_k,
                        global_step,
                    )
        net = self.dist.wrap(self.model, self.device)
        S = self.steps_per_epoch
        while epoch < c.epochs:
            batches = self.epoch_batches(epoch)
            bar = self._bar(epoch, start_k)
            started = time.perf_counter()
            for k in range(start_k, S):
                index = batches[k]
                x, y = self.images[index], self.labels[index]
                loss, correct = self.train_step(net, x, y, global_step)
                global_step += 1
                stats["loss_sum"] += loss * int(y.shape[0])
                stats["correct"] += correct
                stats["count"] += int(y.shape[0])
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{stats['loss_sum'] / stats['count']:.3f}",
                        acc=f"{stats['correct'] / stats['count']:.3f}",
                    )
                if c.checkpoint_every and global_step % c.checkpoint_every == 0 and k + 1 < S:
                    stats["time_s"] += time.perf_counter() - started
                    started = time.perf_counter()
                    last_path = (
                        self._save(
                            epoch=epoch,
                            step_in_epoch=k + 1,
                            global_step=global_step,
                            history=history,
                            epoch_stats=stats,
                        )
                        or last_path
                    )
            if bar is not None:
                bar.close()
            stats["time_s"] += time.perf_counter() - started
            record = self._epoch_record(epoch, global_step, stats)
            history.append(record)
            if self.dist.is_main:
                logger.info("epoch %d: %s", epoch + 1, json.dumps(record))
            epoch, start_k = epoch + 1, 0
            stats = {"loss_sum": 0.0, "correct": 0, "count": 0, "time_s": 0.0}
            last_path = (
                self._save(
                    epoch=epoch,
                    step_in_epoch=0,
                    global_step=global_step,
                    history=history,
                    epoch_stats=stats,
                )
                or last_path
            )
        self.dist.barrier()
        self.model.eval()
        return TrainResult(
            model=self.model,
            config=c,
            history=history,
            global_step=global_step,
            checkpoint=last_path,
            resumed_from=resumed_from,
        )

    def _epoch_record(
        self, epoch: int, global_step: int, stats: Mapping[str, float]
    ) -> dict[str, Any]:
        c = self.config
        totals = torch.tensor(
            [stats["loss_sum"], stats["correct"], stats["count"]], dtype=torch.float64
        )
        totals = self.dist.sum(totals, self.device)
        count = max(float(totals[2]), 1.0)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "global_step": global_step,
            "train_loss": float(totals[0]) / count,
            "train_acc": float(totals[1]) / count,
            "lr": learning_rate(c, max(global_step - 1, 0), self.steps_per_epoch),
            "eps": warmup_eps(
                c.eps, c.eps_warmup_epochs, max(global_step - 1, 0), self.steps_per_epoch
            ),
            "time_s": float(stats["time_s"]),
        }
        record.update(self.evaluate(epoch))
        return record

    def _bar(self, epoch: int, initial: int) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        # disable=None: tqdm turns itself off when stderr is not a terminal.
        return tqdm(
            total=self.steps_per_epoch,
            initial=initial,
            leave=False,
            disable=None,
            desc=f"{self.config.method} epoch {epoch + 1}/{self.config.epochs}",
        )

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        self.dist.close()


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    train_data: ImageData | None = None,
    eval_data: ImageData | None = None,
) -> TrainResult:
    """Train a model as configured (convenience wrapper of :class:`Trainer`).

    Parameters
    ----------
    config : TrainConfig
        All hyper-parameters.
    resume : bool
        Continue from the newest valid checkpoint of ``config.checkpoint_dir``.
    progress : bool
        Progress bars (TTY and rank 0 only).
    train_data, eval_data : ImageData, optional
        Custom data (default: the embedded MNIST split).

    Returns
    -------
    TrainResult
    """
    trainer = Trainer(config, train_data=train_data, eval_data=eval_data, progress=progress)
    try:
        return trainer.fit(resume=resume)
    finally:
        trainer.close()
