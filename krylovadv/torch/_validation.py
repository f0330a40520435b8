"""Input checks shared by the torch adapter.

Every check raises early, names the offending argument and says how to fix it,
instead of letting a shape, dtype or device mismatch surface deep inside a
network as a cryptic error (or, on CUDA, as an asynchronous device-side assert).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "check_choice",
    "check_images",
    "check_labels",
    "check_model_decoupled",
    "check_model_input",
    "check_nonnegative",
    "check_positive",
    "check_positive_int",
]

_FLOAT_DTYPES = (torch.float32, torch.float64)


def check_images(
    x: Any, name: str = "x", *, value_range: tuple[float, float] | None = (0.0, 1.0)
) -> torch.Tensor:
    r"""Check a batch of inputs :math:`x \in [0, 1]^{B \times \dots}`.

    Parameters
    ----------
    x : Any
        Must be a float32 or float64 ``torch.Tensor`` of shape ``(B, ...)`` with
        ``B >= 1`` and at least one feature dimension, finite everywhere.
    name : str
        The argument's name, used in error messages.
    value_range : tuple of float or None
        Closed interval the entries must lie in; ``(0, 1)`` for images (put any
        normalisation inside the model), ``None`` to skip the range check.

    Returns
    -------
    torch.Tensor
        ``x`` itself (not copied).

    Raises
    ------
    TypeError
        If ``x`` is not a tensor or not float32/float64.
    ValueError
        On a wrong shape, NaN/Inf, or entries outside ``value_range``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, ...); got "
            f"{type(x).__name__}. Convert it with torch.as_tensor({name})."
        )
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {x.dtype}; use float32 or float64, e.g. "
            f"{name}.float() (integer images: {name}.float() / 255)."
        )
    if x.ndim < 2 or x.shape[0] == 0 or x.numel() == 0:
        raise ValueError(
            f"{name} must have shape (B, ...) with B >= 1 and at least one "
            f"feature dimension; got {tuple(x.shape)}. For one sample use "
            f"{name}.unsqueeze(0)."
        )
    finite = torch.isfinite(x.detach()).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(
            f"{name} contains NaN or Inf in sample(s) {bad[:10]}{' ...' if len(bad) > 10 else ''}."
        )
    if value_range is not None:
        low, high = value_range
        x_min, x_max = float(x.detach().min()), float(x.detach().max())
        if x_min < low or x_max > high:
            raise ValueError(
                f"{name} must lie in [{low:g}, {high:g}]; got values in [{x_min:.4g}, "
                f"{x_max:.4g}]. Scale images to [0, 1] and put any mean/std normalisation "
                "inside the model (e.g. krylovadv.torch.models.Normalize)."
            )
    return x


def check_labels(
    y: Any,
    batch: int,
    name: str = "y",
    *,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Check integer class labels, one per sample.

    Parameters
    ----------
    y : Any
        Must be an integer ``torch.Tensor`` of shape ``(batch,)``.
    batch : int
        The batch size ``B`` the labels must match.
    name : str
        The argument's name, used in error messages.
    num_classes : int, optional
        If given, every label must lie in ``[0, num_classes)``.
    device : torch.device or str, optional
        If given, ``y`` must be on this device (the inputs' device).

    Returns
    -------
    torch.Tensor
        ``y`` as int64 (the same tensor if it already is).

    Raises
    ------
    TypeError
        If ``y`` is not an integer tensor.
    ValueError
        On a wrong shape, device, or labels out of range.
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of int64 class labels; got "
            f"{type(y).__name__}. Use torch.as_tensor({name}, dtype=torch.int64)."
        )
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(
            f"{name} has dtype {y.dtype}; class labels must be integers: {name}.long()."
        )
    if tuple(y.shape) != (batch,):
        raise ValueError(
            f"{name} must have shape ({batch},), one label per sample; got "
            f"{tuple(y.shape)}. (One-hot labels: {name}.argmax(dim=1).)"
        )
    if device is not None and y.device != torch.device(device):
        raise ValueError(
            f"{name} is on {y.device} but the inputs are on {device}; move it "
            f"with {name}.to(x.device)."
        )
    y = y.long()
    if batch > 0:
        y_min, y_max = int(y.min()), int(y.max())
        if y_min < 0 or (num_classes is not None and y_max >= num_classes):
            valid = f"[0, {num_classes})" if num_classes is not None else "[0, K)"
            raise ValueError(
                f"{name} holds labels in [{y_min}, {y_max}]; they must lie in "
                f"{valid} for a model with "
                f"{num_classes if num_classes is not None else 'K'} classes."
            )
    return y


def check_model_decoupled(model: Any) -> None:
    r"""Check that the model treats the samples of a batch independently.

    With a BatchNorm layer in training mode, sample :math:`b`'s output depends
    on the other samples of the batch through the batch statistics, so the
    Hessian of :math:`\sum_b \ell_b` is no longer block diagonal (a measured
    leak of 0.23 between blocks) and every forward pass also updates the
    running statistics.  Per-sample attacks and Hessians need ``model.eval()``.

    Parameters
    ----------
    model : callable
        A ``torch.nn.Module`` (scanned) or any other callable (nothing to check).

    Raises
    ------
    ValueError
        Naming the first BatchNorm module found in training mode.

    Notes
    -----
    The model's modes are only read, never changed.
    """
    if not isinstance(model, nn.Module):
        return
    for module_name, module in model.named_modules():
        if isinstance(module, _BatchNorm) and module.training:
            label = module_name or "the model itself"
            raise ValueError(
                f"{type(module).__name__} module '{label}' is in training mode: it couples the "
                "samples of a batch through batch statistics (and updates its running "
                "statistics on every forward pass). Call model.eval() first."
            )


def check_model_input(model: Any, x: torch.Tensor, name: str = "x") -> None:
    """Check that ``x`` has the device and floating dtype of the model's parameters.

    Parameters
    ----------
    model : callable
        A ``torch.nn.Module`` (its first floating parameter or buffer is
        compared) or any other callable (nothing to check).
    x : torch.Tensor
        The inputs.
    name : str
        The argument's name, used in error messages.

    Raises
    ------
    ValueError
        On a device mismatch.
    TypeError
        On a dtype mismatch.
    """
    if not isinstance(model, nn.Module):
        return
    reference = next((t for t in _tensors(model) if t.is_floating_point()), None)
    if reference is None:
        return
    if reference.device != x.device:
        raise ValueError(
            f"{name} is on {x.device} but the model is on {reference.device}; "
            f"move one of them, e.g. {name}.to({str(reference.device)!r})."
        )
    if reference.dtype != x.dtype:
        cast = {torch.float64: "double", torch.float32: "float"}.get(x.dtype, "to")
        raise TypeError(
            f"{name} has dtype {x.dtype} but the model's parameters are "
            f"{reference.dtype}; make them equal, e.g. model.{cast}() or "
            f"{name}.to({reference.dtype})."
        )


def _tensors(model: nn.Module) -> Iterable[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``.

    Parameters
    ----------
    value : Any
        The given value.
    name : str
        The argument's name, used in error messages.
    choices : iterable of str
        The valid values.

    Returns
    -------
    str
        ``value``.

    Raises
    ------
    ValueError
        Listing the valid values.
    """
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}.")
    return value


def _as_real(value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}.")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN.")
    return value


def check_nonnegative(value: Any, name: str, *, allow_inf: bool = False) -> float:
    r"""Check a scalar :math:`v \ge 0` (an :math:`\epsilon`, a margin :math:`\kappa`).

    Parameters
    ----------
    value : Any
        A real number (a one-element tensor is accepted).
    name : str
        The argument's name, used in error messages.
    allow_inf : bool
        Whether :math:`+\infty` is accepted.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is negative, NaN, or infinite when not allowed.
    """
    value = _as_real(value, name)
    if value < 0 or (math.isinf(value) and not allow_inf):
        bound = "a finite number >= 0" if not allow_inf else "a number >= 0"
        raise ValueError(f"{name} must be {bound}; got {value}.")
    return value


def check_positive(value: Any, name: str) -> float:
    r"""Check a finite scalar :math:`v > 0` (a step size, a finite-difference :math:`\eta`).

    Parameters
    ----------
    value : Any
        A real number (a one-element tensor is accepted).
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is not finite and positive.
    """
    value = _as_real(value, name)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0; got {value}.")
    return value


def check_positive_int(value: Any, name: str) -> int:
    r"""Check an integer count :math:`\ge 1` (steps, restarts, noise samples).

    Parameters
    ----------
    value : Any
        An integer.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is below 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}.")
    return int(value)
