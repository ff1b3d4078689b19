"""Scale curve: the codec's cost against the packet size, from 1 MiB to 4 GiB.

For each size, a packet of that many MiB of f32 tensors (16 MiB each; one smaller tensor below
16 MiB) is written, read and encoded. Each operation at each size is one point, timed in its
own child process (best of up to 5 calls, at least 0.3 s in all) with the memory it adds above
what the child held before it (its inputs are built first and not counted):

* ``write``: ``encode_tensor`` per array + :func:`m2kt_ref.assemble_to_file` (digests on the
  hashing pool while the data streams to a temporary file, fsync, rename);
* ``read, zero-copy``: :func:`m2kt_ref.read_packet` without tensor checks, a view of every
  tensor;
* ``read + verify``: :func:`m2kt_ref.read_packet` with the tensor checks (digests, finiteness,
  padding) on the default pool;
* ``encode``: :func:`m2kt_ref.encode` of the mapped packet into a new ``bytes`` object (the
  mapping's pages are touched first: faulting in a fresh mapping is the cost of reading);
* ``peer: plain write + fsync``: the same arrays written to a new file with ``os.write`` and
  synced, nothing else: the disk's own rate at that size, for the write curve.

The memory of the read operations includes the file pages they touch through the mapping
(resident, shared with the page cache, reclaimable). Threads: hashing and verification use the
default pool (``min(CPUs, 8)``); everything else runs on one thread.

Usage (the figures and docs/scale_codec.png in docs/performance.md, ## Scale curves)::

    python benchmarks/scale_codec.py                 # 1 MiB ... 4096 MiB
    python benchmarks/scale_codec.py --max 1024      # stop at 1 GiB
    python benchmarks/scale_codec.py --quick         # 1 and 4 MiB, no plot
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MiB,
    curve_args,
    curve_report,
    machine_line,
    measure_point,
    print_point,
    saved_run,
)

import m2kt_ref

TENSOR_MIB = 16
SIZES_MIB = [1, 4, 16, 64, 256, 1024, 4096]
QUICK_MIB = [1, 4]


def fields() -> dict[str, Any]:
    return {
        "header": {"format": "m2kt", "version": "1.0", "created": "2026-01-01T00:00:00Z"},
        "teacher": {
            "name": "bench",
            "architecture": "transformer",
            "latent_dim": 1024,
            "layer": "final",
            "model_digest": "sha256:" + "0" * 64,
        },
        "concepts": [],
        "graph": {"edges": []},
        "traces": [],
        "anchors": [],
        "provenance": {
            "generator": {"name": "benchmarks/scale_codec.py", "version": "1"},
            "task": {"name": "bench", "options": {}},
            "parents": [],
            "task_inputs_used": 0,
            "concept_probes_used": 0,
            "parameters": {},
        },
        "safety": {"require_signature": False, "min_signers": 1},
    }


def make_arrays(mib: int) -> dict[str, np.ndarray]:
    """``mib`` MiB of f32 rows of 1024, in tensors of at most 16 MiB (one random block, copied:
    hashing and checks cost the same for any finite values)."""
    rows = mib * MiB // 4096
    per = TENSOR_MIB * MiB // 4096
    block = np.random.default_rng(0).standard_normal((min(rows, per), 1024), np.float32)
    out = {}
    for i, start in enumerate(range(0, rows, per)):
        n = min(per, rows - start)
        out[f"t{i}"] = block[:n].copy()
    return out


def setup_write(mib: int, path: str) -> tuple[dict[str, np.ndarray], str]:
    return make_arrays(mib), path


def op_write(state: tuple[dict[str, np.ndarray], str]) -> dict[str, Any]:
    arrays, path = state
    tensors = {name: m2kt_ref.encode_tensor(a) for name, a in arrays.items()}
    m2kt_ref.assemble_to_file(fields(), tensors, path)
    return {"tensors": len(tensors)}


def setup_path(path: str) -> str:
    return path


def op_read(path: str) -> None:
    packet = m2kt_ref.read_packet(path, verify_tensors=False)
    [packet.tensor(t.name) for t in packet.body.tensors]


def op_verify(path: str) -> None:
    packet = m2kt_ref.read_packet(path)
    [packet.tensor(t.name) for t in packet.body.tensors]


def setup_packet(path: str) -> m2kt_ref.Packet:
    packet = m2kt_ref.read_packet(path, verify_tensors=False)
    # touch every mapped page first: a first pass over a fresh mapping pays a page fault per
    # 4 KiB of the file, which is the cost of reading the file, not of encoding
    np.frombuffer(packet.data, np.uint8)[::4096].sum()
    return packet


def setup_plain(mib: int, path: str) -> tuple[dict[str, np.ndarray], str]:
    return make_arrays(mib), path + ".plain"


def op_plain_write(state: tuple[dict[str, np.ndarray], str]) -> None:
    """The peer: the same arrays written to a new file and synced, nothing else."""
    arrays, path = state
    Path(path).unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for a in arrays.values():
            view = memoryview(a).cast("B")
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def op_encode(packet: m2kt_ref.Packet) -> None:
    m2kt_ref.encode(packet)


def measure(args: Any, sizes: list[int]) -> list[dict[str, Any]]:
    """Run every point (each in its own child process) and print its row."""
    print("| operation | packet MiB | best s | calls | peak added MiB | GB/s |")
    print("|---|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="m2kt-scale-codec-", dir=args.tmp))
    rows = []
    try:
        for mib in sizes:
            path = str(tmp / f"p{mib}.m2kt")
            points = [
                ("peer: plain write + fsync", setup_plain, op_plain_write, (mib, path)),
                ("write", setup_write, op_write, (mib, path)),
                ("read, zero-copy", setup_path, op_read, (path,)),
                ("read + verify", setup_path, op_verify, (path,)),
                ("encode", setup_packet, op_encode, (path,)),
            ]
            for name, setup, op, point_args in points:
                row = measure_point(setup, op, *point_args, preload=["m2kt_ref", "numpy"])
                row.update(series=name, x=mib)
                rows.append(row)
                print_point(name, mib, row, f"{mib * MiB / row['seconds'] / 1e9:.2f}")
            Path(path).unlink()
            Path(path + ".plain").unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = curve_args(__doc__.split("\n\n")[0], "scale_codec.png", argv)
    sizes = QUICK_MIB if args.quick else [s for s in SIZES_MIB if s <= (args.max or 1e12)]
    print(machine_line(threads=1) + " (hashing and verification: the default pool)")
    saved = saved_run(args)
    rows, note = saved if saved else (measure(args, sizes), machine_line(threads=1))
    curve_report(
        "codec: cost against packet size (f32 tensors of 16 MiB)",
        "packet size (MiB of tensor data)",
        rows,
        args.png,
        args.json,
        note=note,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
