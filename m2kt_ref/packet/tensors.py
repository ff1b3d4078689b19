"""Tensor encoding (spec §5): dtype, shape and little-endian bytes, read back as zero-copy views.

A packet stores every tensor's bytes in one data section; the body holds a descriptor per tensor
(name, dtype, shape, offset, length, SHA-256, and a scale for ``i8``). This module converts between
numpy arrays and those bytes. It never copies on the read side: :func:`view` returns a numpy array
that shares memory with the buffer it was given.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from m2kt_ref.errors import TensorError, ValidationError

__all__ = [
    "ALIGNMENT",
    "PARALLEL_MIN_BYTES",
    "STORAGE_DTYPES",
    "EncodedTensor",
    "aligned",
    "all_finite",
    "encode",
    "expected_length",
    "itemsize",
    "map_by_size",
    "pool_size",
    "sha256_hex",
    "sha256_many",
    "split_by_size",
    "to_float32",
    "view",
]

T = TypeVar("T")
R = TypeVar("R")

#: Offsets of tensors inside the data section are multiples of this many bytes (spec §5.3).
ALIGNMENT = 64

#: dtype name -> numpy storage dtype (little-endian). bf16 has no numpy dtype: it is stored and
#: viewed as its raw 16-bit patterns, and :func:`to_float32` widens it.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "f32": np.dtype("<f4"),
    "f16": np.dtype("<f2"),
    "bf16": np.dtype("<u2"),
    "i8": np.dtype("i1"),
}


def itemsize(dtype: str) -> int:
    """Bytes per element of a packet dtype; raises ``TENSOR_DTYPE`` for an unknown name."""
    try:
        return STORAGE_DTYPES[dtype].itemsize
    except KeyError:
        raise TensorError("TENSOR_DTYPE", f"unknown dtype {dtype!r}") from None


def aligned(n: int) -> int:
    """Round ``n`` up to the next multiple of :data:`ALIGNMENT`."""
    return -(-n // ALIGNMENT) * ALIGNMENT


def expected_length(dtype: str, shape: Iterable[int]) -> int:
    """Byte length implied by dtype and shape (checked before anything is allocated)."""
    return itemsize(dtype) * math.prod(shape)


@dataclass(frozen=True)
class EncodedTensor:
    """A tensor ready to be placed in a packet: dtype name, shape, raw bytes and i8 scale.

    Made by :func:`~m2kt_ref.encode_tensor` and consumed by :func:`~m2kt_ref.assemble`.

    Args:
        dtype: ``f32``, ``f16``, ``bf16`` or ``i8``.
        shape: the tensor's shape.
        data: the stored values, little-endian, as a flat byte view (bf16 as its 16-bit
            patterns, i8 quantised).
        scale: the i8 dequantisation scale (``value = q * scale``); None for other dtypes.

    Example:
        >>> import numpy as np
        >>> import m2kt_ref
        >>> t = m2kt_ref.encode_tensor(np.arange(6.0).reshape(2, 3), "f16")
        >>> isinstance(t, m2kt_ref.EncodedTensor), t.dtype, t.shape, t.nbytes, t.scale
        (True, 'f16', (2, 3), 12, None)
        >>> raw = np.array([0.5, 1.5], dtype="<f4")
        >>> m2kt_ref.EncodedTensor("f32", (2,), memoryview(raw).cast("B")).nbytes
        8
    """

    dtype: str
    shape: tuple[int, ...]
    data: memoryview
    scale: float | None = None

    @property
    def nbytes(self) -> int:
        return self.data.nbytes


def _float32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bit patterns (round to nearest even, NaN kept quiet)."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    out = ((bits + rounding) >> 16).astype("<u2")
    nan = np.isnan(values)
    if nan.any():
        out[nan] = 0x7FC0
    return out


def _i8_scale(values: np.ndarray) -> float:
    """``max|x| / 127``, nudged down where a reader widening in float32 would overflow.

    Near float32's maximum, ``127 * float32(peak / 127)`` rounds up to infinity; there the scale
    steps down by float32 ulps until the product fits, which costs a few ulps on the peak, far
    below half a quantisation step. For a peak below ``127`` times float32's smallest subnormal
    the scale is that subnormal (found by the fuzzing run, tools/fuzz.py). Elsewhere the scale
    is the exact float64 quotient.
    """
    peak = float(np.abs(values).max()) if values.size else 0.0
    if peak == 0.0:
        return 1.0
    # Below float32's smallest subnormal the quotient would be 0 in float32 (and every value
    # NaN or infinite once divided by it): the scale never goes below that subnormal.
    scale = max(peak / 127.0, float(np.finfo(np.float32).smallest_subnormal))
    with np.errstate(over="ignore"):
        narrow = np.float32(scale)
        if np.isfinite(np.float32(127) * narrow):
            return scale
        while not np.isfinite(np.float32(127) * narrow):
            narrow = np.nextafter(narrow, np.float32(0))
    return float(narrow)


def encode(array: np.ndarray, dtype: str = "f32") -> EncodedTensor:
    """Convert a float array to a packet tensor of ``dtype`` (f32, f16, bf16 or i8).

    ``i8`` uses one symmetric scale per tensor: ``q = round(x / scale)``, ``scale = max|x| / 127``
    (1.0 for an all-zero tensor). Non-finite inputs raise ``NONFINITE_VALUE``: a packet may not
    carry them, so refusing early beats writing a file that no reader accepts.

    Args:
        array: the values (anything ``np.asarray`` takes); converted to float32 first.
        dtype: the storage dtype: ``f32``, ``f16``, ``bf16`` (round to nearest even) or ``i8``.

    Returns:
        An :class:`EncodedTensor` holding the stored bytes (``scale`` set for ``i8`` only).

    Raises:
        ValidationError: ``NONFINITE_VALUE`` when the array holds NaN or infinity, or a value
            overflows ``f16`` or ``bf16``.
        TensorError: ``TENSOR_DTYPE`` for an unknown dtype name.

    Example:
        >>> import numpy as np
        >>> import m2kt_ref
        >>> t = m2kt_ref.encode_tensor(np.array([[0.5, -1.0], [2.0, 0.0]]), "i8")
        >>> t.dtype, t.shape, t.nbytes, round(t.scale, 6)      # scale = max|x| / 127
        ('i8', (2, 2), 4, 0.015748)
        >>> try:
        ...     m2kt_ref.encode_tensor(np.array([1.0, np.nan]))
        ... except m2kt_ref.ValidationError as exc:
        ...     print(exc.code)
        NONFINITE_VALUE
    """
    values = np.asarray(array, dtype=np.float32)
    if not all_finite(values, "f32"):
        raise ValidationError("NONFINITE_VALUE", "tensor holds NaN or infinity")
    shape = tuple(int(n) for n in values.shape)
    scale: float | None = None
    if dtype == "f32":
        stored = np.ascontiguousarray(values, dtype="<f4")
    elif dtype == "f16":
        if values.size and np.abs(values).max() > np.finfo(np.float16).max:
            raise ValidationError("NONFINITE_VALUE", "value overflows f16")
        stored = values.astype("<f2")
    elif dtype == "bf16":
        stored = _float32_to_bf16_bits(values)
        if stored.size and int((stored & 0x7FFF).max()) >= 0x7F80:
            raise ValidationError("NONFINITE_VALUE", "value overflows bf16")
    elif dtype == "i8":
        scale = _i8_scale(values)
        stored = np.clip(np.rint(values / scale), -127, 127).astype("i1")
    else:
        itemsize(dtype)  # raises TENSOR_DTYPE
        raise AssertionError("unreachable")
    return EncodedTensor(dtype, shape, memoryview(stored.reshape(-1)).cast("B"), scale)


def view(buffer: memoryview, dtype: str, shape: tuple[int, ...], offset: int) -> np.ndarray:
    """Zero-copy numpy view of a tensor's stored values (bf16 as uint16 bit patterns)."""
    storage = STORAGE_DTYPES[dtype]
    count = math.prod(shape)
    return np.frombuffer(buffer, dtype=storage, count=count, offset=offset).reshape(shape)


def to_float32(stored: np.ndarray, dtype: str, scale: float | None = None) -> np.ndarray:
    """Widen stored values to float32 (dequantising i8 with its scale). Allocates a new array."""
    if dtype == "bf16":
        return (stored.astype("<u4") << 16).view("<f4")
    if dtype == "i8":
        if scale is None:
            raise TensorError("TENSOR_DTYPE", "i8 tensor without a scale")
        return stored.astype(np.float32) * np.float32(scale)
    return stored.astype(np.float32)


def all_finite(stored: np.ndarray, dtype: str) -> bool:
    """True when no element is NaN or infinite (i8 is always finite)."""
    if dtype == "i8" or stored.size == 0:
        return True
    if dtype in ("bf16", "f16"):
        # exponent bits all ones <=> Inf or NaN (integer work: numpy's f16 arithmetic is slow)
        exponent = 0x7F80 if dtype == "bf16" else 0x7C00
        return int((stored.view("<u2") & 0x7FFF).max()) < exponent
    # One pass, no temporary array: a sum is NaN or infinite when an element is (NaN propagates,
    # +inf and -inf give NaN); finite elements can overflow it too, so then look element-wise.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(stored.sum()):
            return True
    return bool(np.isfinite(stored).all())


def sha256_hex(data: memoryview | bytes) -> str:
    """Hex SHA-256 of a byte buffer (hashlib releases the GIL, so threads hash in parallel)."""
    return hashlib.sha256(data).hexdigest()


#: Below this many bytes in all, one thread beats starting a pool.
PARALLEL_MIN_BYTES = 8 << 20


def pool_size(workers: int | None, n_items: int, total_bytes: int) -> int:
    """Threads worth starting for ``n_items`` of ``total_bytes``: 1 means stay on this thread.

    ``workers`` defaults to the CPU count, at most 8; below :data:`PARALLEL_MIN_BYTES` in all,
    starting a pool costs more than it saves.
    """
    n = min(workers or os.cpu_count() or 1, 8, n_items)
    return 1 if n <= 1 or total_bytes < PARALLEL_MIN_BYTES else n


def split_by_size(items: Sequence[T], sizes: Sequence[int], n: int) -> list[list[T]]:
    """``items`` in ``n`` consecutive runs of about equal total ``sizes`` (one task per run,
    not per item, so many small tensors stay cheap)."""
    total = max(1, sum(sizes))
    runs: list[list[T]] = [[] for _ in range(n)]
    done = 0
    for x, size in zip(items, sizes, strict=True):
        runs[min(n - 1, done * n // total)].append(x)
        done += size
    return runs


def map_by_size(
    fn: Callable[[T], R], items: Sequence[T], sizes: Sequence[int], workers: int | None = None
) -> list[R]:
    """``[fn(x) for x in items]``, on threads when the items are big enough to pay for them.

    With ``workers`` > 1 (default: the CPU count, at most 8) and at least
    :data:`PARALLEL_MIN_BYTES` in all, the items are split into that many runs
    (:func:`split_by_size`), one task per run. ``fn`` should release the GIL for most of its
    work (hashlib and numpy do).
    """
    n = pool_size(workers, len(items), sum(sizes))
    if n == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=n) as pool:
        runs = split_by_size(items, sizes, n)
        return [r for run in pool.map(lambda run: [fn(x) for x in run], runs) for r in run]


def sha256_many(buffers: list[memoryview], workers: int | None = None) -> list[str]:
    """Hex SHA-256 of each buffer, in order (see :func:`map_by_size` for the threads)."""
    return map_by_size(sha256_hex, buffers, [memoryview(b).nbytes for b in buffers], workers)
