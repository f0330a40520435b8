"""A training run's folder: which run it holds, and whether a new run may use it.

A checkpoint folder belongs to one run.  Before training starts,
:func:`prepare_run_folder` looks at what the folder holds (checkpoints, the
``history.jsonl`` log) and

- lets a fresh run into an empty or missing folder;
- refuses a new run into a folder holding another run (:class:`RunFolderError`)
  unless ``resume`` (the recorded fingerprint must match: the configuration
  minus the settings that do not change the numbers, and the library version)
  or ``overwrite`` (the run's files, and only those, are deleted first).

So a run never silently overwrites another run's checkpoints and history.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checkpoint import list_checkpoints
from .fingerprint import check_fingerprint

__all__ = [
    "RESUMABLE_CHANGES",
    "RunFolderError",
    "clear_run_folder",
    "prepare_run_folder",
    "recorded_run",
    "training_fingerprint",
]

#: Settings that may change between a run and its resumption (they do not change the
#: numbers, or, for ``epochs``, only extend the run: the schedule is recomputed).
RESUMABLE_CHANGES = frozenset(
    {"checkpoint_dir", "checkpoint_every", "keep_checkpoints", "device", "epochs"}
)

#: The log written next to the checkpoints.
HISTORY = "history.jsonl"


class RunFolderError(ValueError):
    """The checkpoint folder holds another run (``option`` names the option to fix)."""

    option = "--checkpoint-dir"


def training_fingerprint(config: Mapping[str, Any], version: str | None = None) -> dict[str, Any]:
    """Return the training settings that determine the numbers, and the version.

    Parameters
    ----------
    config : mapping
        ``TrainConfig.to_dict()``.
    version : str, optional
        Library version (default: this one).

    Returns
    -------
    dict
    """
    from .. import __version__

    fields = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
    return {"config": fields, "library_version": version or __version__}


def recorded_run(directory: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """Return the newest readable checkpoint metadata of ``directory`` (or ``None``).

    Returns
    -------
    (Path, dict) or None
        The metadata file and its JSON (unverified: only the settings are read).
    """
    for path in reversed(list_checkpoints(directory)):
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(meta, dict) and isinstance(meta.get("config"), dict):
                return path, meta
    return None


def clear_run_folder(directory: str | Path) -> list[Path]:
    """Delete a run's files (checkpoint pairs, ``history.jsonl``); nothing else.

    Returns
    -------
    list of Path
        The deleted files.
    """
    directory = Path(directory)
    removed = []
    paths = [p for m in list_checkpoints(directory) for p in (m, m.with_suffix(".safetensors"))]
    for path in [*paths, directory / HISTORY]:
        # missing_ok: under torchrun every rank clears the same folder.
        if path.exists():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _describe(meta: Mapping[str, Any]) -> str:
    config = meta.get("config", {})
    return (
        f"a {config.get('method', '?')} run of {config.get('model', '?')} at epoch "
        f"{meta.get('epoch', '?')} of {config.get('epochs', '?')}"
    )


def prepare_run_folder(config: Any, *, resume: bool, overwrite: bool) -> Any:
    """Check that a configuration's checkpoint folder may be used; return the configuration.

    Parameters
    ----------
    config : TrainConfig
        The new run's configuration (with ``checkpoint_dir``).
    resume : bool
        Continue the run in the folder: its fingerprint must match.
    overwrite : bool
        Delete the run's files in the folder first.

    Returns
    -------
    TrainConfig

    Raises
    ------
    RunFolderError
        If the folder holds another run and neither ``resume`` nor ``overwrite``.
    FingerprintMismatch
        If ``resume`` and the folder's run has other settings.
    """
    directory = Path(config.checkpoint_dir)
    found = recorded_run(directory)
    has_history = (directory / HISTORY).is_file()
    if found is None and not has_history:
        return config
    if overwrite:
        clear_run_folder(directory)
        return config
    what = _describe(found[1]) if found else f"the log {HISTORY} of a run"
    if not resume:
        raise RunFolderError(
            f"{directory} already holds {what}; pass --resume to continue it (same settings), "
            "--overwrite to delete it and start afresh, or choose another --checkpoint-dir."
        )
    if found is None:
        raise RunFolderError(
            f"{directory} holds {HISTORY} but no readable checkpoint to resume from; pass "
            "--overwrite to start afresh or choose another --checkpoint-dir."
        )
    path, meta = found
    check_fingerprint(
        path,
        training_fingerprint(meta["config"], meta.get("krylovadv_version")),
        training_fingerprint(config.to_dict()),
        fresh="To start afresh, pass --overwrite (deletes that run) or choose another "
        "--checkpoint-dir.",
    )
    return config
