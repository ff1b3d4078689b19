"""Benchmark: m2kt packets against safetensors on the same tensors, timed in the same rounds.

Users compare a packet with the tensor file they already write. For the same tensors, in the
same process, one call of each operation per round (``--rounds``, best time and median of the
per-round ratios reported), it measures:

* **write**: ``safetensors.numpy.save_file`` (the anchor; it does not fsync) and the same
  followed by ``fsync`` (the durability an m2kt write has), against
  ``encode_tensor`` per array + :func:`m2kt_ref.assemble_to_file` (SHA-256 of every tensor on
  the hashing pool while the data streams to a temporary file, fsync, rename) with the default
  pool, with one hashing thread and without the early writeback (all syncing left to the
  final fsync), the in-memory path ``assemble`` + ``write_packet``, and, as the floor an m2kt
  write cannot go under, SHA-256 of the same tensors alone on one and on two threads;
* **read**: ``safetensors.numpy.load_file`` (arrays in memory) against
  :func:`m2kt_ref.read_packet` with zero-copy views of every tensor, without and with the
  tensor checks (digests, finiteness, padding) on the default pool and on one thread;
* **encode**: :func:`m2kt_ref.encode` (one copy into a new ``bytes``) and ``encode_into`` a
  caller's buffer, against a numpy copy of the same bytes (``ndarray.copy``) and the plain
  ``b"".join`` that ``encode`` used before;
* **torch state_dict round trip**: ``safetensors.torch.save_file`` / ``load_file`` against the
  same state_dict written with ``assemble_to_file`` and read back as zero-copy torch tensors
  (``torch.from_numpy`` of the packet's views; bf16 as its 16-bit patterns, viewed back);
* **peak memory while writing**, each write in a fresh child process: the resident memory the
  child added (tensors included) as a multiple of the tensor bytes.

Threads: torch runs on one thread (``torch.set_num_threads(1)``); m2kt hashes on
``min(CPUs, 8)`` threads plus the writing thread unless a row says one thread; safetensors
writes and reads on one thread.

Usage (the figures in docs/performance.md, ## Against safetensors)::

    python benchmarks/vs_safetensors.py                       # 96 f32 tensors, 128 MiB
    python benchmarks/vs_safetensors.py --quick               # small smoke run
    python benchmarks/vs_safetensors.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
from _common import in_subprocess, interleaved, machine_line, ratio_summary

import m2kt_ref
from m2kt_ref.packet import codec, files
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.files import read_bytes

MiB = 1 << 20
CREATED = "2026-01-01T00:00:00Z"


def body_fields(width: int) -> dict[str, Any]:
    """A minimal body: the tensors are carried, nothing references them."""
    return {
        "header": {"format": "m2kt", "version": "1.0", "created": CREATED},
        "teacher": {
            "name": "bench",
            "architecture": "transformer",
            "latent_dim": width,
            "layer": "final",
            "model_digest": "sha256:" + "0" * 64,
        },
        "concepts": [],
        "graph": {"edges": []},
        "traces": [],
        "anchors": [],
        "provenance": {
            "generator": {"name": "benchmarks/vs_safetensors.py", "version": "1"},
            "task": {"name": "bench", "options": {}},
            "parents": [],
            "task_inputs_used": 0,
            "concept_probes_used": 0,
            "parameters": {},
        },
        "safety": {"require_signature": False, "min_signers": 1},
    }


def make_arrays(count: int, mib: int) -> dict[str, np.ndarray]:
    """``count`` f32 arrays of shape [128, w], about ``mib`` MiB in all (seeded)."""
    width = max(1, mib * MiB // (4 * 128 * count))
    rng = np.random.default_rng(0)
    return {f"layer{i}.weight": rng.standard_normal((128, width), np.float32) for i in range(count)}


# --------------------------------------------------------------------------- the operations


def st_save(arrays: dict[str, np.ndarray], path: Path, sync: bool = False) -> None:
    from safetensors.numpy import save_file

    save_file(arrays, str(path))
    if sync:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def m2kt_write(
    arrays: dict[str, np.ndarray], path: Path, workers: int | None = None
) -> m2kt_ref.Packet:
    tensors = {name: m2kt_ref.encode_tensor(a) for name, a in arrays.items()}
    width = next(iter(arrays.values())).shape[-1] if arrays else 1
    return m2kt_ref.assemble_to_file(body_fields(width), tensors, path, workers=workers)


def m2kt_write_in_memory(arrays: dict[str, np.ndarray], path: Path) -> None:
    tensors = {name: m2kt_ref.encode_tensor(a) for name, a in arrays.items()}
    width = next(iter(arrays.values())).shape[-1] if arrays else 1
    m2kt_ref.write_packet(m2kt_ref.assemble(body_fields(width), tensors), path)


def m2kt_write_late_sync(arrays: dict[str, np.ndarray], path: Path) -> m2kt_ref.Packet:
    """``assemble_to_file`` with the early writeback off: all syncing left to the final fsync."""
    saved = files.WRITEBACK_BYTES
    files.WRITEBACK_BYTES = 1 << 62
    try:
        return m2kt_write(arrays, path)
    finally:
        files.WRITEBACK_BYTES = saved


def sha256_all(arrays: dict[str, np.ndarray], threads: int) -> list[str]:
    """The hashing an m2kt write cannot avoid, alone: SHA-256 of every tensor."""
    views = [memoryview(a).cast("B") for a in arrays.values()]
    return tz.map_by_size(tz.sha256_hex, views, [v.nbytes for v in views], threads)


def st_load(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def m2kt_read(path: Path, verify: bool, workers: int | None = None) -> dict[str, np.ndarray]:
    if verify and workers is not None:
        packet = codec.decode(read_bytes(path), workers=workers)
    else:
        packet = m2kt_ref.read_packet(path, verify_tensors=verify)
    return {t.name: packet.tensor(t.name) for t in packet.body.tensors}


# --------------------------------------------------------------------------- torch


def state_dict_tensors(state: dict[str, Any]) -> dict[str, m2kt_ref.EncodedTensor]:
    """A torch state_dict as packet tensors, without copies (f32 checked finite; bf16 raw)."""
    import torch

    out = {}
    for name, t in state.items():
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().view(np.uint16)
            out[name] = m2kt_ref.EncodedTensor("bf16", tuple(t.shape), memoryview(raw).cast("B"))
        elif t.dtype == torch.float32:
            out[name] = m2kt_ref.encode_tensor(t.numpy())
        else:
            raise ValueError(f"{name}: dtype {t.dtype} is not a packet dtype")
    return out


def packet_state_dict(packet: m2kt_ref.Packet) -> dict[str, Any]:
    """The packet's tensors as torch tensors sharing its (read-only) memory."""
    import torch

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns on read-only arrays
        for t in packet.body.tensors:
            view = torch.from_numpy(packet.tensor(t.name))
            out[t.name] = view.view(torch.bfloat16) if t.dtype == "bf16" else view
    return out


def make_model(mib: int, dtype: str) -> Any:
    """A transformer-shaped state_dict (width 512) of about ``mib`` MiB."""
    import torch

    torch.manual_seed(0)
    d = 512
    per_layer = (12 * d * d + 13 * d) * (4 if dtype == "f32" else 2)
    layers = max(1, round(mib * MiB / per_layer))
    blocks = []
    for _ in range(layers):
        blocks += [
            torch.nn.LayerNorm(d),
            torch.nn.Linear(d, 3 * d),
            torch.nn.Linear(d, d),
            torch.nn.LayerNorm(d),
            torch.nn.Linear(d, 4 * d),
            torch.nn.Linear(4 * d, d),
        ]
    model = torch.nn.Sequential(*blocks)
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    return model


# --------------------------------------------------------------------------- peak memory


def peak_write(kind: str, count: int, mib: int, folder: str) -> dict[str, Any]:
    """One write in this (child) process; the parent reads the memory it added."""
    arrays = make_arrays(count, mib)
    nbytes = sum(a.nbytes for a in arrays.values())
    path = Path(folder) / f"peak-{kind}"
    if kind == "safetensors save_file":
        st_save(arrays, path)
    elif kind == "m2kt assemble_to_file":
        m2kt_write(arrays, path)
    else:
        m2kt_write_in_memory(arrays, path)
    return {"tensor_bytes": nbytes}


# --------------------------------------------------------------------------- report


def _remover(path: Path) -> Callable[[], None]:
    return lambda: path.unlink(missing_ok=True)


def report(
    title: str,
    times: dict[str, list[float]],
    peer: str,
    nbytes: int,
    extra_peers: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    print(f"\n## {title} (peer: {peer})")
    head = f"{'operation':48s} {'best ms':>8s} {'GB/s':>6s} {'x peer':>7s} {'paired':>7s}"
    for p in extra_peers:
        head += f" {'x ' + p[:18]:>21s}"
    print(head)
    rows = []
    for name in times:
        s = ratio_summary(times, name, peer)
        row = {"op": name, **s, "GB/s": nbytes / s["op_best_s"] / 1e9}
        line = (
            f"{name:48s} {s['op_best_s'] * 1e3:8.1f} {row['GB/s']:6.2f} "
            f"{s['x_peer_best']:7.2f} {s['x_peer_median_paired']:7.2f}"
        )
        for p in extra_peers:
            r = ratio_summary(times, name, p)
            row[f"x {p} best"] = r["x_peer_best"]
            line += f" {r['x_peer_best']:21.2f}"
        rows.append(row)
        print(line)
    print("(x peer = best time / the peer's best time: below 1 is faster than the peer;")
    print(" paired = median over rounds of time / the peer's time in the same round)")
    return rows


def bench_numpy(args: argparse.Namespace, tmp: Path, out: dict[str, Any]) -> None:
    arrays = make_arrays(args.tensors, args.mib)
    nbytes = sum(a.nbytes for a in arrays.values())
    shape = next(iter(arrays.values())).shape
    print(f"\n# {len(arrays)} f32 tensors of shape {list(shape)}, {nbytes / MiB:.1f} MiB")
    st_path, ours, ours1, mem, late = (
        tmp / n for n in ("a.safetensors", "b.m2kt", "c.m2kt", "d.m2kt", "e.m2kt")
    )
    packet = m2kt_write(arrays, ours)
    assert m2kt_write_in_memory(arrays, mem) is None and mem.read_bytes() == ours.read_bytes()
    writes: dict[str, Callable[[], Any]] = {
        "safetensors save_file": lambda: st_save(arrays, st_path),
        "safetensors save_file + fsync": lambda: st_save(arrays, st_path, sync=True),
        "m2kt assemble_to_file (hash pool + fsync)": lambda: m2kt_write(arrays, ours),
        "m2kt assemble_to_file, 1 hashing thread": lambda: m2kt_write(arrays, ours1, 1),
        "m2kt assemble_to_file, no early writeback": lambda: m2kt_write_late_sync(arrays, late),
        "m2kt assemble + write_packet (in memory)": lambda: m2kt_write_in_memory(arrays, mem),
        "(floor) SHA-256 of the tensors, 1 thread": lambda: sha256_all(arrays, 1),
        "(floor) SHA-256 of the tensors, 2 threads": lambda: sha256_all(arrays, 2),
    }
    # every write makes a new file, as a user's would: the previous one is removed untimed
    paths = (st_path, st_path, ours, ours1, late, mem)
    unlink = {name: _remover(path) for name, path in zip(writes, paths, strict=False)}
    w = interleaved(writes, args.rounds, unlink)
    out["write"] = report(
        "write + hash", w, "safetensors save_file", nbytes, ("safetensors save_file + fsync",)
    )
    reads: dict[str, Callable[[], Any]] = {
        "safetensors load_file": lambda: st_load(st_path),
        "m2kt read_packet, zero-copy": lambda: m2kt_read(ours, verify=False),
        "m2kt read_packet + verify (pool)": lambda: m2kt_read(ours, verify=True),
        "m2kt read_packet + verify, 1 thread": lambda: m2kt_read(ours, verify=True, workers=1),
    }
    r = interleaved(reads, args.rounds)
    out["read"] = report("read", r, "safetensors load_file", nbytes)
    for name, got in m2kt_read(ours, verify=True).items():
        assert np.array_equal(got, arrays[name])
    data = np.frombuffer(packet.data, np.uint8)
    buf = bytearray(codec.encoded_size(packet))
    encodes: dict[str, Callable[[], Any]] = {
        "numpy copy (ndarray.copy)": lambda: data.copy(),
        "m2kt encode": lambda: codec.encode(packet),
        "m2kt encode_into a caller's buffer": lambda: codec.encode_into(packet, buf),
        'b"".join (encode before)': lambda: b"".join(codec.encode_chunks(packet)),
    }
    e = interleaved(encodes, args.rounds)
    out["encode"] = report("encode", e, "numpy copy (ndarray.copy)", nbytes)
    print("(for encode, x peer above 1 is slower than the copy: the goal is 1/0.8 = 1.25 or less)")
    out["peak"] = []
    print("\n## peak memory while writing, one child process each (tensors included)")
    for kind in (
        "safetensors save_file",
        "m2kt assemble_to_file",
        "m2kt assemble + write_packet",
    ):
        res = in_subprocess(peak_write, kind, args.tensors, args.mib, str(tmp))
        ratio = res["peak_added_bytes"] / res["tensor_bytes"]
        out["peak"].append({"op": kind, **res, "x tensor bytes": ratio})
        print(f"{kind:48s} {res['peak_added_bytes'] / MiB:8.1f} MiB  {ratio:5.2f} x tensor bytes")


def bench_torch(args: argparse.Namespace, tmp: Path, out: dict[str, Any], dtype: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    model = make_model(args.sd_mib, dtype)
    state = model.state_dict()
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    print(
        f"\n# torch state_dict, {dtype}: {len(state)} tensors, {nbytes / MiB:.1f} MiB "
        f"(torch {torch.__version__}, {torch.get_num_threads()} thread)"
    )
    st_path, ours = tmp / "sd.safetensors", tmp / "sd.m2kt"
    fields = body_fields(512)

    def ours_save() -> m2kt_ref.Packet:
        return m2kt_ref.assemble_to_file(fields, state_dict_tensors(state), ours)

    def ours_load(verify: bool) -> dict[str, Any]:
        return packet_state_dict(m2kt_ref.read_packet(ours, verify_tensors=verify))

    ours_save()
    save_file(state, str(st_path))
    back = ours_load(True)
    assert all(torch.equal(back[k], v) for k, v in state.items())
    ops: dict[str, Callable[[], Any]] = {
        "safetensors.torch save_file": lambda: save_file(state, str(st_path)),
        "m2kt assemble_to_file": ours_save,
    }
    w = interleaved(
        ops,
        args.rounds,
        {"safetensors.torch save_file": _remover(st_path), "m2kt assemble_to_file": _remover(ours)},
    )
    out[f"torch {dtype} write"] = report(
        f"torch {dtype} state_dict: write", w, "safetensors.torch save_file", nbytes
    )
    reads: dict[str, Callable[[], Any]] = {
        "safetensors.torch load_file": lambda: load_file(str(st_path)),
        "m2kt read_packet, zero-copy torch views": lambda: ours_load(False),
        "m2kt read_packet + verify, torch views": lambda: ours_load(True),
    }
    r = interleaved(reads, args.rounds)
    out[f"torch {dtype} read"] = report(
        f"torch {dtype} state_dict: read", r, "safetensors.torch load_file", nbytes
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tensors", type=int, default=96)
    parser.add_argument("--mib", type=int, default=128, help="MiB of f32 tensors")
    parser.add_argument("--sd-mib", type=int, default=128, help="MiB of the torch state_dict")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tmp", default=None, help="folder for the files (default: system tmp)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--no-torch", action="store_true", help="skip the state_dict part")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:  # a smoke run: tiny sizes, the peak-memory points in this process
        args.tensors, args.mib, args.sd_mib, args.rounds = 8, 4, 4, 2
        _common.ISOLATE = False
    print(machine_line())
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    tmp = Path(tempfile.mkdtemp(prefix="m2kt-vs-st-", dir=args.tmp))
    try:
        bench_numpy(args, tmp, out)
        if not args.no_torch:
            import torch

            torch.set_num_threads(1)
            for dtype in ("f32", "bf16"):
                bench_torch(args, tmp, out, dtype)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n" + machine_line())
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
