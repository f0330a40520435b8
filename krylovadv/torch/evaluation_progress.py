"""The progress file of :func:`krylovadv.torch.evaluate.evaluate` and its fingerprint.

The file is JSON, rewritten atomically after every finished batch::

    {"format": 2, "fingerprint": {...}, "clean": [0/1 per sample],
     "attacks": {name: {"still": [...], "done_batches": [...], "record": {...}}}}

Resuming reads it back and skips finished work, but only if its fingerprint
(:func:`evaluation_fingerprint`) equals the new run's; otherwise
:class:`~krylovadv.torch.fingerprint.FingerprintMismatch` names the fields that
differ, so a resumed evaluation never reports another evaluation's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import atomic_write_bytes
from .fingerprint import array_sha256, attack_config, check_fingerprint, model_sha256

__all__ = ["evaluation_fingerprint", "load_progress", "save_progress"]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


#: Context keys that do not change an evaluation's numbers (left out of its fingerprint).
_NOT_FINGERPRINTED = ("device", "elapsed_s")


def evaluation_fingerprint(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Sequence[tuple[str, Any]],
    *,
    cascade: bool,
    batch_size: int,
    dtype: torch.dtype,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything that determines an evaluation's numbers, as JSON-able values.

    Stored in the progress file and compared on resume
    (:mod:`krylovadv.torch.fingerprint`): the weights' hash, the data's hash and
    size, each attack's full configuration (seeds included) and order, the
    protocol, the batch size (an attack's random start is drawn per batch), the
    dtype, the library version and the caller's context (``meta``: data source,
    split, subset seed, ..., without ``device``).

    Returns
    -------
    dict
    """
    from .. import __version__

    fingerprint = {
        "library_version": __version__,
        "model_sha256": model_sha256(model),
        "data_sha256": array_sha256(x, y),
        "samples": int(x.shape[0]),
        "attacks": {name: attack_config(attack) for name, attack in attacks},
        "attack_order": [name for name, _ in attacks],
        "protocol": "cascade" if cascade else "independent",
        "batch_size": int(batch_size),
        "dtype": str(dtype),
        "meta": {k: v for k, v in (meta or {}).items() if k not in _NOT_FINGERPRINTED},
    }
    # Round-trip through JSON so that a fresh fingerprint compares equal to a stored one.
    return json.loads(json.dumps(fingerprint, default=_json_default))


#: Layout of the progress file (2: with a fingerprint).
_PROGRESS_FORMAT = 2


def load_progress(path: Any, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Read the progress file ``path`` (a fresh state if ``None`` or missing).

    Raises
    ------
    ValueError
        If the file is not valid JSON or not a progress file (naming the file).
    FingerprintMismatch
        If it was written by a run with other settings (naming the fields).
    """
    fresh = {"format": _PROGRESS_FORMAT, "fingerprint": fingerprint, "clean": None, "attacks": {}}
    if path is None or not Path(path).is_file():
        return fresh
    start_fresh = f"To start fresh, delete {path} or pass another resume file."
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"resume file {path} is not a progress file of krylovadv (truncated or corrupt "
            f"JSON: {error}). {start_fresh}"
        ) from None
    if not isinstance(state, dict) or not {"clean", "attacks"} <= set(state):
        raise ValueError(f"resume file {path} is not a progress file of krylovadv. {start_fresh}")
    check_fingerprint(path, state.get("fingerprint"), fingerprint, fresh=start_fresh)
    return state


def save_progress(path: Any, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (nothing if ``path`` is ``None``)."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(state).encode("utf-8"))
