"""What machine a figure came from: CPU model and instruction set, versions, threads.

Two runs of the same commands on two machines of the same kind gave different teachers
(0.9896 against 1.0000) and different per-seed figures: float results depend on the CPU's
vector instructions through the kernels torch picks. Every results file records the CPU so a
reader can tell which figures are comparable (spec/algorithms.md §5.6).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m2kt_ref import __version__

__all__ = ["environment"]

#: Instruction-set flags that change which kernels torch and numpy run.
_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


def _cpuinfo() -> tuple[str | None, list[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, []
    model, flags = None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            present = set(value.split())
            flags = [f for f in _FLAGS if f in present]
    return model, flags


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, CPU model and instruction-set flags, thread count and device."""
    model, flags = _cpuinfo()
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    out: dict[str, Any] = {
        "m2kt_ref": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_model": model or platform.processor() or platform.machine(),
        "cpu_flags": flags,
        "torch_cpu_capability": capability() if callable(capability) else None,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        out["cuda_device"] = torch.cuda.get_device_name(device)
    return out
