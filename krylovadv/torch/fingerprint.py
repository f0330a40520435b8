"""Fingerprints of resumable runs: everything that determines their numbers.

A resumable artifact (an evaluation's progress file, a training checkpoint)
stores a *fingerprint*: a JSON dict of the model's weights hash, the data's
identity (source, split, sample indices and a hash of the very arrays), each
attack's full configuration, the protocol, the seeds, the dtype and the library
version.  Resuming compares the stored fingerprint with the new run's, field by
field, and refuses on any difference (:class:`FingerprintMismatch`), so a
resumed run can never report another run's numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "FingerprintMismatch",
    "array_sha256",
    "attack_config",
    "check_fingerprint",
    "differences",
    "model_sha256",
    "state_sha256",
]


class FingerprintMismatch(ValueError):
    """A resumable file was written by a run with different settings.

    Attributes
    ----------
    path : str
        The file.
    fields : list of (str, object, object)
        ``(field, recorded, now)`` for every differing field.
    """

    def __init__(self, path: Any, fields: list[tuple[str, Any, Any]], fresh: str) -> None:
        self.path = str(path)
        self.fields = fields
        shown = "; ".join(f"{name}: {_short(old)} -> {_short(new)}" for name, old, new in fields)
        super().__init__(
            f"{path} was written by a different run, so its numbers do not belong to this one "
            f"(recorded -> now: {shown}). {fresh}"
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:16] + "..." + text[-8:]


def state_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hash a state dict: names, dtypes, shapes and bytes, in sorted name order.

    Parameters
    ----------
    tensors : mapping of str to torch.Tensor
        E.g. ``model.state_dict()``.

    Returns
    -------
    str
        Hex sha256.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        # view as bytes: numpy has no bfloat16, and the raw bytes are what we mean.
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_sha256(model: nn.Module) -> str:
    """Return :func:`state_sha256` of ``model.state_dict()`` (weights and buffers)."""
    return state_sha256(model.state_dict())


def array_sha256(*arrays: Any) -> str:
    """Hash arrays (numpy or torch): dtype, shape and bytes of each, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        if isinstance(array, torch.Tensor):
            array = array.detach().to("cpu").contiguous().numpy()
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def attack_config(attack: Any) -> dict[str, Any]:
    """Return an attack's full configuration as JSON-able values.

    Every attribute that is a number, string, bool or ``None`` is kept; a norm
    (or any object with a ``name``) is kept by name; the model, tensors and
    generators are left out (the model is fingerprinted by its weights).

    Parameters
    ----------
    attack : object
        An attack, e.g. :class:`krylovadv.torch.attacks.PGD`.

    Returns
    -------
    dict
        ``{"class": ..., <attribute>: <value>, ...}``.
    """
    config: dict[str, Any] = {"class": f"{type(attack).__module__}.{type(attack).__qualname__}"}
    for key, value in sorted(vars(attack).items()):
        if key.startswith("_") or isinstance(value, (nn.Module, torch.Tensor, torch.Generator)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            config[key] = repr(value)
        elif value is None or isinstance(value, (bool, int, float, str)):
            config[key] = value
        elif isinstance(getattr(value, "name", None), str):
            config[key] = value.name
        elif isinstance(value, (tuple, list)) and all(
            isinstance(v, (bool, int, float, str)) for v in value
        ):
            config[key] = list(value)
    return config


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Compare two fingerprints field by field (nested keys joined by dots).

    Returns
    -------
    list of (str, object, object)
        ``(field, old, new)`` for each field that differs or is missing on one
        side (shown as ``None``), in sorted field order.
    """
    a, b = _flatten(old), _flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_fingerprint(
    path: Any,
    recorded: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    *,
    fresh: str,
    ignore: tuple[str, ...] = (),
) -> None:
    """Raise :class:`FingerprintMismatch` unless ``recorded`` matches ``current``.

    Parameters
    ----------
    path : path-like
        The resumable file (named in the message).
    recorded : mapping or None
        The fingerprint stored in the file (``None``: a file from a version
        that stored none, which is refused as well).
    current : mapping
        This run's fingerprint.
    fresh : str
        How to start fresh (appended to the message).
    ignore : tuple of str
        Fields allowed to differ (e.g. ``"epochs"`` when extending a training).
    """
    if recorded is None:
        raise FingerprintMismatch(path, [("fingerprint", None, "(this run's)")], fresh)
    found = [d for d in differences(recorded, current) if d[0] not in ignore]
    if found:
        raise FingerprintMismatch(path, found, fresh)
