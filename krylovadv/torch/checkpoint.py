"""Safe, atomic training checkpoints: safetensors weights + JSON metadata.

A checkpoint is a *pair* of files in one directory::

    ckpt-000000120.safetensors   model and optimizer tensors (flat name → tensor)
    ckpt-000000120.json          everything else, as JSON

The JSON metadata holds the training method and configuration, the position
in the run (epoch, step within the epoch, global step), the optimizer's
non-tensor state (``param_groups``, scalar per-parameter state), the random
number generator states (base64 / int lists), the data split, the package and
torch versions, and the **sha256 of the weights file**.  Loading checks that
checksum first, so a half-written pair, a truncated file or a tampered weights
file is detected and reported instead of silently resuming from wrong weights.

Both files are written atomically: to a temporary file in the same directory,
``fsync``, then ``os.replace`` onto the final name (and the directory is
``fsync``-ed), weights first, metadata last.  A run killed at any moment (even
``kill -9`` in the middle of a write) leaves either the previous complete
pair or the new complete pair as the newest valid checkpoint;
:func:`latest_checkpoint` skips anything incomplete.

Nothing here ever unpickles: tensors are read with :mod:`safetensors`,
everything else with :mod:`json`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointError",
    "atomic_write_bytes",
    "capture_rng_state",
    "flatten_optimizer_state",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "read_verified_bytes",
    "restore_rng_state",
    "save_checkpoint",
    "sha256_bytes",
    "sha256_file",
    "sidecar_path",
    "unflatten_optimizer_state",
    "verify_sidecar",
    "write_sidecar",
]

logger = logging.getLogger(__name__)

#: Version of the metadata layout written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = 1

_NAME = re.compile(r"^ckpt-(\d{9})\.json$")
_MODEL_PREFIX = "model."
_OPTIM_PREFIX = "optimizer.state."


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or does not match its metadata."""


# --- hashing and atomic writes ----------------------------------------------


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 digest of ``data``.

    Parameters
    ----------
    data : bytes
        The content.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 digest of a file's content.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    # Make the rename itself durable (POSIX); not possible on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, ``os.replace``).

    The temporary file lives in the same directory, so the final rename never
    crosses a file system; readers see either the old file or the complete new
    one, never a partial write.

    Parameters
    ----------
    path : str or path-like
        Destination; its directory must exist.
    data : bytes
        The full content.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        # Name the destination, not the hidden temporary file the user never asked for.
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # mkstemp's 0600 would hide shipped files
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


# --- sha256 sidecars of weights files -----------------------------------------


def sidecar_path(path: str | os.PathLike) -> Path:
    """Return the sidecar of a weights file: ``<name>.safetensors.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | os.PathLike, sha256: str, **info: Any) -> Path:
    """Record a weights file's sha256 (and ``info``) in its JSON sidecar, atomically.

    Parameters
    ----------
    path : str or path-like
        The weights file (already written).
    sha256 : str
        Its hex digest (e.g. as returned by
        :func:`krylovadv.torch.zoo.save_weights_file`).
    **info
        JSON-serialisable extras (e.g. the training configuration).

    Returns
    -------
    Path
        The sidecar.
    """
    from .. import __version__

    path = Path(path)
    record = {
        "file": path.name,
        "sha256": sha256,
        "bytes": path.stat().st_size,
        "krylovadv_version": __version__,
        **info,
    }
    side = sidecar_path(path)
    atomic_write_bytes(side, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))
    return side


def verify_sidecar(path: str | os.PathLike) -> str:
    """Return a weights file's sha256, checked against its sidecar if it has one.

    Parameters
    ----------
    path : str or path-like
        The weights file.

    Returns
    -------
    str
        The hex sha256 of the file's bytes.

    Raises
    ------
    CheckpointError
        If the sidecar is unreadable or records another sha256 (the file was
        truncated, corrupted or replaced after it was written); the message
        names both files and the fix.
    """
    path = Path(path)
    digest = sha256_file(path)
    side = sidecar_path(path)
    if not side.is_file():
        return digest
    try:
        recorded = json.loads(side.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"the sidecar {side} of {path} is unreadable ({error}); rewrite the weights "
            "with the library or delete the sidecar to load the file unverified."
        ) from None
    if digest != recorded:
        raise CheckpointError(
            f"checksum mismatch for {path}: its sha256 is {digest} but {side.name} records "
            f"{recorded}; the file was truncated, corrupted or replaced after it was "
            "written. Write it again (e.g. krylovadv train --output) or restore a good copy."
        )
    return digest


# --- optimizer state ----------------------------------------------------------


def flatten_optimizer_state(
    state_dict: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into flat tensors and JSON-able values.

    Parameters
    ----------
    state_dict : mapping
        The output of ``torch.optim.Optimizer.state_dict()``:
        ``{"state": {index: {name: value}}, "param_groups": [...]}``.

    Returns
    -------
    tensors : dict of str to torch.Tensor
        ``"optimizer.state.<index>.<name>"`` → tensor (momentum buffers, Adam
        moments, Adam's ``step`` tensor, …), on the CPU, contiguous.
    meta : dict
        ``{"param_groups": [...], "scalars": {index: {name: value}}}``: the
        non-tensor state, JSON-serialisable.

    Raises
    ------
    TypeError
        For a state value that is neither a tensor nor JSON-serialisable.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM_PREFIX}{int(index)}.{name}"] = _cpu_copy(value)
            else:
                _check_json(value, f"optimizer state {index}.{name}")
                scalars.setdefault(str(int(index)), {})[name] = value
    groups = json.loads(json.dumps(list(state_dict["param_groups"])))
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(
    tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`.

    Parameters
    ----------
    tensors : mapping of str to torch.Tensor
        May contain other keys (e.g. ``model.*``); only ``optimizer.state.*`` are used.
    meta : mapping
        The ``meta`` returned by :func:`flatten_optimizer_state`.

    Returns
    -------
    dict
        A state dict for ``torch.optim.Optimizer.load_state_dict``.
    """
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith(_OPTIM_PREFIX):
            continue
        index, name = key[len(_OPTIM_PREFIX) :].split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):  # JSON has no tuples; Adam's betas is one
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def _cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    # clone: safetensors refuses tensors that share storage (tied weights).
    return tensor.detach().to("cpu").contiguous().clone()


def _check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except TypeError as error:
        raise TypeError(
            f"{what} is neither a tensor nor JSON-serialisable "
            f"({type(value).__name__}); it cannot be checkpointed."
        ) from error


# --- random number generators -----------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """Capture the global RNG states (Python, numpy, torch CPU and CUDA) as JSON.

    Returns
    -------
    dict
        ``{"python": [...], "numpy": {...}, "torch": base64, "cuda": [base64, ...]}``.
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the legacy global state)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "name": name,
            "keys": np.asarray(keys).tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [
            base64.b64encode(s.numpy().tobytes()).decode("ascii")
            for s in torch.cuda.get_rng_state_all()
        ]
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the global RNG states captured by :func:`capture_rng_state`.

    Parameters
    ----------
    state : mapping
        As returned by :func:`capture_rng_state` (CUDA states are restored
        only where CUDA is available).
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    legacy = (
        numpy_state["name"],
        np.asarray(numpy_state["keys"], dtype=np.uint32),
        numpy_state["pos"],
        numpy_state["has_gauss"],
        numpy_state["cached_gaussian"],
    )
    np.random.set_state(legacy)  # noqa: NPY002 (the legacy global state)
    torch_bytes = base64.b64decode(state["torch"])
    torch.set_rng_state(torch.frombuffer(bytearray(torch_bytes), dtype=torch.uint8))
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(
            [
                torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)
                for s in cuda_states
            ]
        )


# --- saving and loading -----------------------------------------------------


@dataclass
class Checkpoint:
    """A loaded, verified checkpoint.

    Attributes
    ----------
    path : Path
        The metadata file (``ckpt-<step>.json``).
    weights_path : Path
        The weights file it references.
    metadata : dict
        The JSON metadata (see the module docstring).
    model_state : dict of str to torch.Tensor
        For ``model.load_state_dict``.
    optimizer_state : dict or None
        For ``optimizer.load_state_dict`` (``None`` if none was saved).
    """

    path: Path
    weights_path: Path
    metadata: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None

    @property
    def global_step(self) -> int:
        """Optimizer steps taken when the checkpoint was written."""
        return int(self.metadata["global_step"])


def _checkpoint_paths(directory: Path, step: int) -> tuple[Path, Path]:
    stem = f"ckpt-{step:09d}"
    return directory / f"{stem}.json", directory / f"{stem}.safetensors"


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    step: int,
    model_state: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    keep_last: int | None = 2,
) -> Path:
    """Write a checkpoint pair atomically; return the metadata path.

    Parameters
    ----------
    directory : str or path-like
        Created if missing.
    step : int
        Global optimizer step; names the files ``ckpt-<step:09d>.*``.
    model_state : mapping of str to torch.Tensor
        ``model.state_dict()`` (copied to the CPU).
    optimizer_state : mapping, optional
        ``optimizer.state_dict()``; tensors go to the weights file, the rest to
        the metadata.
    metadata : mapping, optional
        Extra JSON-serialisable metadata (method, config, epoch, RNG states, …).
    keep_last : int or None
        Delete all but the newest ``keep_last`` checkpoints of the directory
        after writing (``None``: keep everything).

    Returns
    -------
    Path
        The metadata file.
    """
    from safetensors.torch import save as save_tensors

    from .. import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta_path, weights_path = _checkpoint_paths(directory, int(step))
    tensors = {f"{_MODEL_PREFIX}{k}": _cpu_copy(v) for k, v in model_state.items()}
    meta: dict[str, Any] = dict(metadata or {})
    if optimizer_state is not None:
        optim_tensors, optim_meta = flatten_optimizer_state(optimizer_state)
        tensors.update(optim_tensors)
        meta["optimizer"] = optim_meta
    blob = save_tensors(
        tensors, metadata={"format": "pt", "krylovadv": "checkpoint", "global_step": str(int(step))}
    )
    meta.update(
        {
            "checkpoint_format": CHECKPOINT_FORMAT,
            "global_step": int(step),
            "weights_file": weights_path.name,
            "weights_sha256": sha256_bytes(blob),
            "weights_bytes": len(blob),
            "krylovadv_version": __version__,
            "torch_version": torch.__version__,
        }
    )
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    # Weights first, metadata last: the metadata names the weights' checksum, so
    # a kill between the two writes leaves a pair that fails verification (or an
    # orphan weights file), and the previous checkpoint stays the newest valid one.
    atomic_write_bytes(weights_path, blob)
    atomic_write_bytes(meta_path, text.encode("utf-8"))
    if keep_last is not None:
        _prune(directory, keep_last)
    return meta_path


def _prune(directory: Path, keep_last: int) -> None:
    steps = sorted(_steps_on_disk(directory))
    for step in steps[:-keep_last] if keep_last > 0 else []:
        for path in _checkpoint_paths(directory, step):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    # Temporary files of writes killed half-way.
    for stale in directory.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _steps_on_disk(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return [int(m.group(1)) for p in directory.iterdir() if (m := _NAME.match(p.name))]


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Metadata files of the checkpoints in ``directory``, oldest first (unverified).

    Parameters
    ----------
    directory : str or path-like
        A checkpoint directory (may be missing: empty list).

    Returns
    -------
    list of Path
    """
    directory = Path(directory)
    return [_checkpoint_paths(directory, s)[0] for s in sorted(_steps_on_disk(directory))]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Return the newest checkpoint of ``directory`` that verifies, or ``None``.

    Pairs that fail verification (a write killed half-way, a truncated or
    tampered file) are skipped with a warning, so a resumed run falls back to
    the previous complete checkpoint.

    Parameters
    ----------
    directory : str or path-like
        A checkpoint directory.

    Returns
    -------
    Path or None
        The metadata file of the newest valid checkpoint.
    """
    for path in reversed(list_checkpoints(directory)):
        try:
            _read_verified(path)
        except CheckpointError as error:
            logger.warning("skipping invalid checkpoint: %s", error)
            continue
        return path
    return None


def read_verified_bytes(
    path: Path,
    sha256: str | None,
    *,
    missing: str,
    mismatch: Callable[[str, bytes], str],
    error: type[CheckpointError] = CheckpointError,
) -> bytes:
    """Read a weights file and check its sha256 before anyone parses it.

    Parameters
    ----------
    path : Path
        The file.
    sha256 : str or None
        Expected hex digest; ``None`` skips the check.
    missing : str
        Message of the error raised when the file does not exist.
    mismatch : callable
        ``mismatch(digest, blob)`` gives the message when the digest differs.
    error : type
        The :class:`CheckpointError` subclass to raise.

    Returns
    -------
    bytes
        The verified content.
    """
    try:
        blob = path.read_bytes()
    except FileNotFoundError as exc:
        raise error(missing) from exc
    if sha256 is not None:
        digest = sha256_bytes(blob)
        if digest != sha256:
            raise error(mismatch(digest, blob))
    return blob


def _read_verified(meta_path: Path) -> tuple[dict[str, Any], Path, bytes]:
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint metadata {meta_path} does not exist.") from error
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"checkpoint metadata {meta_path} is not valid JSON (truncated or corrupt): {error}"
        ) from error
    if not isinstance(metadata, dict) or "weights_sha256" not in metadata:
        raise CheckpointError(f"{meta_path} is not a krylovadv checkpoint (no weights_sha256).")
    weights_path = meta_path.parent / metadata["weights_file"]
    blob = read_verified_bytes(
        weights_path,
        metadata["weights_sha256"],
        missing=f"weights file {weights_path} named by {meta_path} is missing.",
        mismatch=lambda digest, blob: (
            f"checksum mismatch for {weights_path}: sha256 {digest} but {meta_path.name} "
            f"records {metadata['weights_sha256']} ({len(blob)} bytes on disk, "
            f"{metadata.get('weights_bytes', '?')} recorded). The file is truncated, "
            "tampered with, or from another write; not loading it."
        ),
    )
    return metadata, weights_path, blob


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and verify a checkpoint (never unpickles).

    Parameters
    ----------
    path : str or path-like
        A metadata file ``ckpt-<step>.json``, or a directory (its
        :func:`latest_checkpoint`).

    Returns
    -------
    Checkpoint
        Tensors on the CPU.

    Raises
    ------
    CheckpointError
        If there is no valid checkpoint, a file is missing or not parseable, or
        the weights' sha256 differs from the one recorded in the metadata.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"no valid checkpoint in {path}.")
        path = latest
    metadata, weights_path, blob = _read_verified(path)
    try:
        tensors = load_tensors(blob)
    except (SafetensorError, ValueError) as error:
        raise CheckpointError(
            f"weights file {weights_path} is not a valid safetensors file: {error}"
        ) from error
    model_state = {
        k[len(_MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(_MODEL_PREFIX)
    }
    optimizer_state = None
    if "optimizer" in metadata:
        optimizer_state = unflatten_optimizer_state(tensors, metadata["optimizer"])
    return Checkpoint(
        path=path,
        weights_path=weights_path,
        metadata=metadata,
        model_state=model_state,
        optimizer_state=optimizer_state,
    )
