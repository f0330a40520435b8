"""The fixed source models of ensemble training, named by zoo name, checkpoint or weights file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..checkpoint import load_checkpoint
from ..models import build_model
from ..pretrained import available_models, load_pretrained, load_weights_file
from .config import TrainConfig

__all__ = ["load_source_model"]


def load_source_model(spec: str, *, device: torch.device | str = "cpu") -> nn.Module:
    """Load a fixed source model of ensemble training.

    Parameters
    ----------
    spec : str
        A model-zoo name (:func:`krylovadv.torch.pretrained.available_models`),
        a checkpoint (``ckpt-*.json`` or its directory), or a ``.safetensors``
        file written by :func:`~krylovadv.torch.pretrained.save_weights_file`
        (architecture in its header).
    device : torch.device or str
        Where to put the model.

    Returns
    -------
    torch.nn.Module
        In eval mode.
    """
    zoo_names = available_models()
    if spec in zoo_names:
        return load_pretrained(spec, device=device)
    path = Path(spec)
    if path.suffix == ".safetensors":
        return load_weights_file(path, device=device)
    if path.is_dir() or path.suffix == ".json":
        checkpoint = load_checkpoint(path)
        config = TrainConfig.from_dict(checkpoint.metadata["config"])
        model = build_model(config.model, **config.model_kwargs)
        model.load_state_dict(checkpoint.model_state)
        return model.to(device).eval()
    raise ValueError(
        f"ensemble source {spec!r} is neither a zoo model ({zoo_names}) nor a "
        "checkpoint or .safetensors file."
    )
