"""Writing a packet from its tensors straight to a file, hashing them on other threads.

:func:`~m2kt_ref.assemble` followed by :func:`~m2kt_ref.write_packet` copies every tensor into
one data section in memory, hashes it, then writes it: twice the tensor bytes in memory and
three passes over them, one after the other. :func:`assemble_to_file` makes one pass: the body
is validated first with pending digests (a digest's encoded length does not depend on its value,
so the body's length, hence where the data section starts, is known before any hashing), the
tensors are written from the caller's buffers to their places in the file while a thread pool
hashes them, and the body with the real digests is written last, before the file is synced and
renamed into place. Nothing is copied in memory and the output is byte for byte what
``write_packet(assemble(...))`` writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydantic

from m2kt_ref.packet import codec
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.files import AtomicFile
from m2kt_ref.packet.model import TensorInfo

__all__ = ["assemble_to_file"]

_ZEROS = bytes(tz.ALIGNMENT)
_DESCRIPTORS = pydantic.TypeAdapter(list[TensorInfo])


def _data_chunks(
    tensors: list[tz.EncodedTensor], infos: list[dict[str, Any]], data_len: int
) -> Iterator[bytes | memoryview]:
    """The data section as views of the caller's tensors and the zero padding between them."""
    cursor = 0
    for t, info in zip(tensors, infos, strict=True):
        if info["offset"] > cursor:
            yield _ZEROS[: info["offset"] - cursor]
        yield t.data
        cursor = info["offset"] + t.nbytes
    if data_len > cursor:
        yield _ZEROS[: data_len - cursor]


def _hash_run(run: list[tz.EncodedTensor]) -> list[str]:
    return [tz.sha256_hex(t.data) for t in run]


def _write_and_hash(
    fh: AtomicFile,
    tensors: list[tz.EncodedTensor],
    infos: list[dict[str, Any]],
    data_len: int,
    workers: int | None,
) -> list[str]:
    """Write the data section at the file's position and return the tensors' digests.

    Hashing runs on a pool (runs of tensors balanced by size) while this thread writes:
    ``hashlib`` and ``pwritev`` both release the GIL, so on two cores the write and the hashing
    overlap instead of adding up. Small packets are hashed here, then written.
    """
    sizes = [t.nbytes for t in tensors]
    n = tz.pool_size(workers, len(tensors), sum(sizes))
    if n == 1:
        digests = _hash_run(tensors)
        fh.write(_data_chunks(tensors, infos, data_len))
        return digests
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(_hash_run, run) for run in tz.split_by_size(tensors, sizes, n)]
        fh.write(_data_chunks(tensors, infos, data_len))
        return [digest for future in futures for digest in future.result()]


def assemble_to_file(
    fields: Mapping[str, Any],
    tensors: Mapping[str, tz.EncodedTensor],
    path: str | Path,
    *,
    workers: int | None = None,
) -> codec.Packet:
    """Build a packet from body fields and named tensors and write it to ``path`` in one pass.

    The result is byte for byte ``write_packet(assemble(fields, tensors), path)``, but the
    tensors go from the caller's buffers to the file without a copy in memory while other
    threads hash them, so it costs about one write of the tensor bytes and needs no memory
    beyond the tensors themselves. The write is atomic: a temporary file beside ``path`` is
    synced and renamed over it; on any error or interrupt it is removed and ``path`` is left
    as it was. The body is validated before anything is written.

    Args:
        fields: the body's sections except ``tensors``, as for :func:`~m2kt_ref.assemble`.
        tensors: tensor name -> :class:`~m2kt_ref.EncodedTensor`, in data-section order.
        path: the packet file to create or replace (CBOR encoding).
        workers: threads that hash the tensors (default: one per CPU, at most 8), besides the
            thread that writes.

    Returns:
        The packet, unsigned; its tensors are zero-copy views of the written file, mapped.

    Raises:
        LimitError, VersionError, ValidationError, TensorError: the body breaks a rule, as
            for :func:`~m2kt_ref.assemble` (nothing is written then).
        FileAccessError: ``IO_ERROR`` when the file cannot be written.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> demo = m2kt_ref.demo_packet()
        >>> fields = {k: v for k, v in demo.body.to_data().items() if k != "tensors"}
        >>> tensors = {
        ...     t.name: m2kt_ref.EncodedTensor(t.dtype, tuple(t.shape),
        ...                                    demo.data[t.offset : t.offset + t.length], t.scale)
        ...     for t in demo.body.tensors
        ... }
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     packet = m2kt_ref.assemble_to_file(fields, tensors, Path(tmp) / "p.m2kt")
        ...     same = (Path(tmp) / "p.m2kt").read_bytes() == m2kt_ref.encode(demo)
        >>> same, packet.packet_id == demo.packet_id
        (True, True)
    """
    items = list(tensors.values())
    infos = codec.describe_tensors(tensors)
    draft = codec.validate_body({**fields, "tensors": infos})
    body_len = len(codec.canonical_cbor(draft.to_data()))
    data_len = codec.data_length(infos)
    before, between = codec.envelope_parts(body_len, data_len, signed=False)
    data_start = len(before) + body_len + len(between)
    with AtomicFile(path) as fh:
        fh.seek(data_start)
        digests = _write_and_hash(fh, items, infos, data_len, workers)
        for info, digest in zip(infos, digests, strict=True):
            info["sha256"] = digest
        # only the digests changed, and the rules do not read them: re-validate the descriptors
        body = draft.model_copy(update={"tensors": _DESCRIPTORS.validate_python(infos)})
        body_bytes = codec.canonical_cbor(body.to_data())
        if len(body_bytes) != body_len:  # pragma: no cover - a digest always has 64 hex digits
            raise AssertionError("the body changed length when its digests were filled in")
        fh.pwrite(before + body_bytes + between, 0)
        mapped = fh.map()
    return codec.Packet(body, body_bytes, mapped[data_start : data_start + data_len].toreadonly())
