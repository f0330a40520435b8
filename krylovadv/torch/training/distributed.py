"""DistributedDataParallel plumbing: join the ``torchrun`` process group, sum tallies, wrap.

A process launched by ``torchrun --nproc_per_node=N`` has ``RANK`` and
``WORLD_SIZE`` in its environment; :func:`setup_distributed` then joins the
process group (NCCL on CUDA, gloo on the CPU).  A plain process gets the
one-process :class:`Distributed`, whose methods are no-ops, so the trainer
has one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Distributed", "setup_distributed"]


@dataclass(frozen=True)
class Distributed:
    """The process's place in the process group (one process: rank 0 of 1).

    Attributes
    ----------
    rank : int
        Global rank.
    world_size : int
        Number of processes :math:`W`.
    local_rank : int
        Rank on this machine (selects ``cuda:LOCAL_RANK``).
    initialized_here : bool
        Whether :func:`setup_distributed` created the process group (and
        :meth:`close` should destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes checkpoints and reports)."""
        return self.rank == 0

    def sum(self, tally: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Return the sum of ``tally`` over all ranks (``tally`` itself for one process).

        The reduction runs on ``device`` (NCCL reduces CUDA tensors only); the
        result comes back on the CPU.
        """
        if not self.enabled:
            return tally
        reduced = tally.to(device)
        dist.all_reduce(reduced)
        return reduced.cpu()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Return the module the outer forward goes through: DDP's wrapper, or ``model``."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        """Wait for every rank (no-op for one process)."""
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if :func:`setup_distributed` joined it."""
        if self.initialized_here:
            dist.destroy_process_group()


def setup_distributed(device: str) -> Distributed:
    """Join the process group when launched by ``torchrun`` (RANK and WORLD_SIZE set).

    Parameters
    ----------
    device : str
        The run's device: ``cuda*`` selects the NCCL backend, anything else gloo.

    Returns
    -------
    Distributed
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return Distributed()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        initialized_here = True
    return Distributed(rank, world, local_rank, initialized_here)
