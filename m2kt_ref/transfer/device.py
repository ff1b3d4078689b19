"""Devices and token tensors: the one place that turns a user's device string into a checked one."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref.errors import DeviceUnavailableError

__all__ = ["as_long_tensor", "model_device", "resolve_device"]


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when present) to a checked device.

    Args:
        device: a device string, a ``torch.device``, or None (``cpu``).

    Returns:
        The device, known to exist here.

    Raises:
        DeviceUnavailableError: ``USAGE`` when CUDA (or ``cuda:N``) is requested but not
            available, or for an unknown or unsupported device (``mps``, ``xla``...).

    Example:
        >>> import m2kt_ref
        >>> import m2kt_ref.transfer as mt
        >>> mt.resolve_device("cpu")
        device(type='cpu')
        >>> mt.resolve_device("auto").type in ("cpu", "cuda")
        True
        >>> try:
        ...     mt.resolve_device("banana")
        ... except m2kt_ref.UsageError as exc:    # DeviceUnavailableError is a UsageError
        ...     print(type(exc).__name__, exc.code)
        DeviceUnavailableError USAGE
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceUnavailableError(f"unknown device {device!r}; use cpu, cuda or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError("cuda requested but torch.cuda.is_available() is False")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"{dev} requested but only {torch.cuda.device_count()}")
    elif dev.type != "cpu":
        raise DeviceUnavailableError(f"device {dev} is not supported; use cpu or cuda")
    return dev


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def as_long_tensor(x: Any, device: torch.device | None = None) -> torch.Tensor:
    """numpy array / sequence / tensor of token ids -> ``int64`` tensor on ``device``."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x, dtype=np.int64)
        # Task arrays are read-only (cached); torch wants writable memory, so copy those.
        t = torch.from_numpy(np.array(arr) if not arr.flags.writeable else arr)
    return t.to(device=device, dtype=torch.long)
