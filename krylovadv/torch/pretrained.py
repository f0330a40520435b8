r"""Pre-trained weights: safetensors files and the checksummed registry of the model zoo.

The registry ``krylovadv/torch/weights/registry.json`` maps a name to its
weights file (safetensors), the file's sha256, the exact command that rebuilt
it, its training configuration, its training time, and its clean and PGD-40
robust accuracy on the embedded test split.  :func:`load_pretrained` checks the
checksum before reading a byte of tensor data, and reads with safetensors only
(never unpickles).

This module only *stores and loads* weights; the zoo's recipes and its builder
live in :mod:`krylovadv.torch.zoo`, which trains with
:mod:`krylovadv.torch.training`.  Training needs this module (ensemble
training's fixed sources may be zoo models), so it sits below both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, atomic_write_bytes, read_verified_bytes, sha256_bytes
from .models import build_model

__all__ = [
    "REBUILD_COMMAND",
    "REGISTRY_FILE",
    "REGISTRY_FORMAT",
    "WEIGHTS_DIR",
    "ZooError",
    "available_models",
    "load_pretrained",
    "load_registry",
    "load_weights_file",
    "save_weights_file",
    "verify",
]

#: How to rebuild a zoo model (recorded in the registry, quoted in error messages).
REBUILD_COMMAND = "krylovadv zoo build"

#: Folder of the shipped weights and registry.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: The registry file.
REGISTRY_FILE = WEIGHTS_DIR / "registry.json"
#: Registry layout version.
REGISTRY_FORMAT = 1


class ZooError(CheckpointError):
    """A zoo model is unknown, missing, or its file fails the checksum."""


# --- weights files -------------------------------------------------------------------


def save_weights_file(path: str | os.PathLike, model: nn.Module, *, config: Any = None) -> str:
    """Write a model's weights as safetensors (atomically); return the file's sha256.

    The header's metadata records the architecture (``model``, ``model_kwargs``)
    so that :func:`load_weights_file` can rebuild the module, and the
    training configuration (``config``, JSON).

    Parameters
    ----------
    path : str or path-like
        Destination ``.safetensors`` file.
    model : torch.nn.Module
        The model.
    config : TrainConfig or mapping, optional
        Its training configuration (``model`` and ``model_kwargs`` are read from it).

    Returns
    -------
    str
        Hex sha256 of the written bytes.
    """
    from safetensors.torch import save as save_tensors

    values = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    header = {
        "format": "pt",
        "krylovadv": "weights",
        "model": str(values.get("model", "")),
        "model_kwargs": json.dumps(values.get("model_kwargs", {}), sort_keys=True),
        "config": json.dumps(values, sort_keys=True),
    }
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    blob = save_tensors(tensors, metadata=header)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, blob)
    return sha256_bytes(blob)


def _load_blob(
    blob: bytes,
    path: Path,
    *,
    architecture: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    try:
        tensors = load_tensors(blob)
    except (SafetensorError, ValueError) as error:
        raise ZooError(f"{path} is not a valid safetensors file: {error}") from error
    if architecture is None:
        header = _header_metadata(blob, path)
        architecture = header.get("model") or None
        if architecture is None:
            raise ZooError(
                f"{path} does not record its architecture (no 'model' in the "
                "safetensors metadata); build the model and load the state dict."
            )
        model_kwargs = json.loads(header.get("model_kwargs", "{}"))
    model = build_model(architecture, **dict(model_kwargs or {}))
    model.load_state_dict(tensors)
    return model.to(device).eval()


def _header_metadata(blob: bytes, path: Path) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header.
    size = int.from_bytes(blob[:8], "little")
    try:
        header = json.loads(blob[8 : 8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ZooError(f"{path} has an unreadable safetensors header: {error}") from error
    return dict(header.get("__metadata__", {}))


def load_weights_file(
    path: str | os.PathLike, *, device: torch.device | str = "cpu", sha256: str | None = None
) -> nn.Module:
    """Build a model from a ``.safetensors`` file written by :func:`save_weights_file`.

    Parameters
    ----------
    path : str or path-like
        The file.
    device : torch.device or str
        Where to put the model.
    sha256 : str, optional
        Expected hex digest; a mismatch raises :class:`ZooError`.

    Returns
    -------
    torch.nn.Module
        In eval mode.
    """
    path = Path(path)
    blob = read_verified_bytes(
        path,
        sha256,
        error=ZooError,
        missing=f"weights file {path} does not exist.",
        mismatch=lambda digest, _: (
            f"checksum mismatch for {path}: sha256 {digest}, expected "
            f"{sha256}. The file is corrupt or was replaced; rebuild it."
        ),
    )
    return _load_blob(blob, path, device=device)


# --- the registry --------------------------------------------------------------------


def load_registry(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read the registry (an empty one if the file does not exist).

    Parameters
    ----------
    path : str or path-like, optional
        Default :data:`REGISTRY_FILE`.

    Returns
    -------
    dict
        ``{"format": 1, "models": {name: entry}}``.
    """
    path = Path(path) if path is not None else REGISTRY_FILE
    if not path.is_file():
        return {"format": REGISTRY_FORMAT, "models": {}}
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ZooError(f"model registry {path} is not valid JSON: {error}") from error
    registry.setdefault("models", {})
    return registry


def available_models(path: str | os.PathLike | None = None) -> list[str]:
    """Names of the registered models.

    Parameters
    ----------
    path : str or path-like, optional
        Registry file (default :data:`REGISTRY_FILE`).

    Returns
    -------
    list of str
    """
    return sorted(load_registry(path)["models"])


def load_pretrained(
    name: str, *, device: torch.device | str = "cpu", registry: str | os.PathLike | None = None
) -> nn.Module:
    """Load a zoo model, verifying its sha256 first.

    Parameters
    ----------
    name : str
        A registered name (:func:`available_models`).
    device : torch.device or str
        Where to put the model.
    registry : str or path-like, optional
        Registry file (default :data:`REGISTRY_FILE`); weights paths are
        relative to its folder.

    Returns
    -------
    torch.nn.Module
        In eval mode.

    Raises
    ------
    ZooError
        Unknown name, missing file, or checksum mismatch.

    Examples
    --------
    >>> from krylovadv.torch.zoo import load_pretrained
    >>> model = load_pretrained("natural")  # doctest: +SKIP
    """
    registry_path = Path(registry) if registry is not None else REGISTRY_FILE
    models = load_registry(registry_path)["models"]
    if name not in models:
        raise ZooError(
            f"unknown zoo model {name!r}; available: {sorted(models)}. Build it "
            f"with `{REBUILD_COMMAND} {name}`."
        )
    entry = models[name]
    path = registry_path.parent / entry["file"]
    blob = read_verified_bytes(
        path,
        entry["sha256"],
        error=ZooError,
        missing=(
            f"weights file {path} of zoo model {name!r} is missing; rebuild it with "
            f"`{entry.get('command', f'{REBUILD_COMMAND} {name}')}`."
        ),
        mismatch=lambda digest, _: (
            f"checksum mismatch for zoo model {name!r} ({path}): sha256 {digest}, "
            f"registry says {entry['sha256']}. The file is corrupt or was replaced; "
            f"rebuild it with `{entry.get('command')}`."
        ),
    )
    return _load_blob(
        blob,
        path,
        architecture=entry["model"],
        model_kwargs=entry.get("model_kwargs", {}),
        device=device,
    )


def verify(registry: str | os.PathLike | None = None) -> dict[str, bool]:
    """Check every registered file's existence and sha256.

    Parameters
    ----------
    registry : str or path-like, optional
        Registry file (default :data:`REGISTRY_FILE`).

    Returns
    -------
    dict of str to bool
        Name → whether the file exists and matches.
    """
    registry_path = Path(registry) if registry is not None else REGISTRY_FILE
    result = {}
    for name, entry in load_registry(registry_path)["models"].items():
        path = registry_path.parent / entry["file"]
        result[name] = path.is_file() and sha256_bytes(path.read_bytes()) == entry["sha256"]
    return result
