"""Codec benchmark (issue 2, item 7): encode/decode speed, peak memory, validation cost.

Usage::

    python benchmarks/codec.py [--mib 256] [--dim 16384] [--layouts many,manifold]
                               [--repeats 5] [--concepts 10000] [--edges 100000]
                               [--jsonschema] [--tmp DIR] [--json OUT]
    python benchmarks/codec.py --layouts many --profile    # where decode's time goes
    python benchmarks/codec.py --layouts ""                # the validation part only

Part 1 builds a packet holding ``--mib`` MiB of f32 embeddings of width ``--dim`` in two layouts:
``many`` (one concept per row, 4096 tensors of 64 KiB by default) and ``manifold`` (64 concepts,
each an embedding plus a 63-direction manifold: 192 tensors). It times, best of ``--repeats``:

* ``encode to bytes``: ``codec.encode`` to one bytes object;
* ``write file``: ``codec.write_packet`` (temporary file, fsync, rename);
* ``decode bytes, zero-copy``: ``codec.decode(buf, verify_tensors=False)``;
* ``decode bytes + verify``: ``codec.decode`` with tensor verification (digests, finiteness,
  padding), on one thread and on the default thread pool;
* ``read file, mmap``: ``codec.read_packet`` of the file, without and with verification.

Speeds are payload bytes per second and ratios to peers timed alternately with each operation in
the same run: a numpy copy of the same bytes (``ndarray.copy``, which allocates as ``encode``
does), a plain ``bytes(memoryview)`` copy (the fastest way to fill a new bytes object),
single-thread hashlib SHA-256 of the payload (verification's bound) and a plain write+fsync.
Memory is the tracemalloc peak of one call (Python and numpy allocations; an mmap's page cache is
not an allocation) as a multiple of the payload; the input buffer itself is not counted.

Part 2 times validation of a body with ``--concepts`` concepts and ``--edges`` edges against
pydantic's ``PacketBody.model_validate`` of the same metadata: ``validate_body`` (limits,
version, structure, semantics) and the whole body decode (strict CBOR, canonical form,
validation), ``validate_body`` again with the codec's pauses of the garbage collector undone
(what the pauses save), and with ``--jsonschema`` the JSON Schema check for reference.
``--profile`` prints instead a cProfile of a zero-copy decode for each layout.

Everything runs on one thread except the line marked with the CPU count (hashing on a pool).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m2kt_ref.packet import codec
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.files import read_bytes
from m2kt_ref.packet.model import RELATIONS, PacketBody

MiB = 1 << 20


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall time of ``repeats`` calls (the result of each call is dropped before the next)."""
    return best_times({"fn": fn}, repeats)["fn"]


def best_times(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best wall time of each function, calling them in turn ``repeats`` times.

    Interleaving an operation with its peers exposes both to the same background load, which
    matters on a small shared machine.
    """
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter()
            result = fn()
            best[name] = min(best[name], time.perf_counter() - start)
            del result
    return best


def peak_bytes(fn: Callable[[], Any]) -> int:
    """tracemalloc peak of one call, above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    return peak


def fields_for(n_concepts: int, dim: int, edges: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "header": {"format": "m2kt", "version": "1.0", "created": "2026-01-01T00:00:00Z"},
        "teacher": {
            "name": "bench",
            "architecture": "transformer",
            "latent_dim": dim,
            "layer": "final",
            "model_digest": "sha256:" + "0" * 64,
        },
        "concepts": [
            {"id": f"c{i}", "label": f"concept {i}", "kind": "symbol", "embedding": f"e{i}"}
            for i in range(n_concepts)
        ],
        "graph": {"edges": edges},
        "traces": [],
        "anchors": [],
        "provenance": {
            "generator": {"name": "benchmarks/codec.py", "version": "1"},
            "task": {"name": "bench", "options": {}},
            "parents": [],
            "task_inputs_used": 0,
            "concept_probes_used": n_concepts,
            "parameters": {},
            "seed": 0,
        },
        "safety": {"require_signature": False, "min_signers": 1},
    }


def random_edges(n_concepts: int, n_edges: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Random edges; is_a edges always point to a lower index, so they form a DAG."""
    relations = sorted(RELATIONS)
    src = rng.integers(0, n_concepts, n_edges)
    dst = rng.integers(0, n_concepts, n_edges)
    rel = rng.integers(0, len(relations), n_edges)
    weight = rng.random(n_edges).astype(np.float32)
    edges = []
    for s, t, r, w in zip(src.tolist(), dst.tolist(), rel.tolist(), weight.tolist(), strict=True):
        relation = relations[r]
        if relation == "is_a":
            if s == t:
                relation = "similar_to"
            s, t = max(s, t), min(s, t)
        edges.append({"source": f"c{s}", "target": f"c{t}", "relation": relation, "weight": w})
    return edges


def build_packet(layout: str, mib: int, dim: int) -> tuple[codec.Packet, str]:
    """A packet with ``mib`` MiB of f32 embeddings, in one of two layouts.

    ``many``: one concept per row, each with one ``[dim]`` embedding (many small tensors).
    ``manifold``: fewer concepts, each with an embedding and a 63-direction manifold
    ``[63, dim]`` (64 rows of ``dim`` per concept), plus its 63 variances.
    """
    rng = np.random.default_rng(0)
    rows = mib * MiB // (4 * dim)
    if layout == "many":
        embeddings = rng.standard_normal((rows, dim), dtype=np.float32)
        tensors = {f"e{i}": tz.encode(embeddings[i], "f32") for i in range(rows)}
        fields = fields_for(rows, dim, [])
        what = f"{rows} concepts x [{dim}] f32: {rows} tensors"
    else:
        n = rows // 64
        block = rng.standard_normal((n, 64, dim), dtype=np.float32)
        tensors = {}
        fields = fields_for(n, dim, [])
        for i, concept in enumerate(fields["concepts"]):
            tensors[f"e{i}"] = tz.encode(block[i, 0], "f32")
            tensors[f"d{i}"] = tz.encode(block[i, 1:], "f32")
            tensors[f"v{i}"] = tz.encode(np.linspace(1, 0.1, 63), "f32")
            concept["manifold"] = {
                "directions": f"d{i}",
                "variances": f"v{i}",
                "spread": 1.0,
                "support": 64,
            }
        what = (
            f"{n} concepts x ([{dim}] + [63, {dim}]) f32 (+ [63] variances): {len(tensors)} tensors"
        )
    packet = codec.assemble(fields, tensors, workers=1)
    return packet, what


def bench_payload(args: argparse.Namespace, layout: str, out: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    packet, what = build_packet(layout, args.mib, args.dim)
    build = time.perf_counter() - t0
    payload = len(packet.data)
    gb = payload / 1e9
    print(f"\n## layout '{layout}': {what}; data section {payload / MiB:.1f} MiB")
    print(f"(assemble, hashing on 1 thread: {build:.2f} s)")
    data = np.frombuffer(packet.data, np.uint8)

    tmp = Path(tempfile.mkdtemp(prefix="m2kt-bench-", dir=args.tmp))
    plain, path = tmp / "plain.bin", tmp / "packet.m2kt"

    def plain_write() -> None:
        with open(plain, "wb") as fh:
            fh.write(packet.data)
            fh.flush()
            os.fsync(fh.fileno())

    buf = codec.encode(packet)
    codec.write_packet(packet, path)
    memcpy = lambda: data.copy()  # noqa: E731
    sha256 = lambda: hashlib.sha256(packet.data).digest()  # noqa: E731
    # name -> (operation, peers timed alternately with it, repeats)
    r, slow = args.repeats, max(2, args.repeats // 2)
    ops: dict[str, tuple[Callable[[], Any], dict[str, Callable[[], Any]], int]] = {
        "encode to bytes": (
            lambda: codec.encode(packet),
            {"memcpy": memcpy, "bytes copy": lambda: bytes(packet.data)},
            r,
        ),
        "write file (write_packet)": (
            lambda: codec.write_packet(packet, path),
            {"memcpy": memcpy, "write+fsync": plain_write},
            slow,
        ),
        "decode bytes, zero-copy (no verify)": (
            lambda: codec.decode(buf, verify_tensors=False),
            {"memcpy": memcpy},
            r,
        ),
        "decode bytes + verify, 1 thread": (
            lambda: codec.decode(buf, workers=1),
            {"memcpy": memcpy, "sha256": sha256},
            slow,
        ),
        f"decode bytes + verify, {os.cpu_count()} threads": (
            lambda: codec.decode(buf),
            {"memcpy": memcpy, "sha256": sha256},
            slow,
        ),
        "read file, mmap (no verify)": (
            lambda: codec.read_packet(path, verify_tensors=False),
            {"memcpy": memcpy},
            r,
        ),
        "read file, mmap + verify, 1 thread": (
            lambda: codec.decode(read_bytes(path), workers=1),
            {"memcpy": memcpy, "sha256": sha256},
            slow,
        ),
    }
    rows = []
    print(
        f"{'operation':40s} {'GB/s':>7s} {'x copy':>7s} {'x bytes':>7s} {'x sha256':>8s}"
        f" {'x write':>7s} {'alloc/payload':>13s}"
    )
    for name, (fn, peers, reps) in ops.items():
        best = best_times({"op": fn, **peers}, reps)
        peak = peak_bytes(fn)
        seconds = best["op"]
        row = {
            "op": name,
            "seconds": seconds,
            "GB/s": gb / seconds,
            "alloc/payload": peak / payload,
        }
        for peer in peers:
            row[f"{peer}_seconds"] = best[peer]
            row[f"x {peer}"] = best[peer] / seconds
        rows.append(row)

        def ratio(key: str, row: dict[str, Any] = row) -> str:
            return f"{row[key]:.2f}" if key in row else "-"

        print(
            f"{name:40s} {row['GB/s']:7.2f} {ratio('x memcpy'):>7s} {ratio('x bytes copy'):>7s}"
            f" {ratio('x sha256'):>8s}"
            f" {ratio('x write+fsync'):>7s} {row['alloc/payload']:13.3f}"
        )
    best_copy = min(row["memcpy_seconds"] for row in rows)
    best_sha = min(row["sha256_seconds"] for row in rows if "sha256_seconds" in row)
    best_write = min(row["write+fsync_seconds"] for row in rows if "write+fsync_seconds" in row)
    print(
        f"peers (best): numpy copy {gb / best_copy:.2f} GB/s; SHA-256 on 1 thread "
        f"{gb / best_sha:.2f} GB/s; plain write+fsync {gb / best_write:.2f} GB/s"
    )
    # The paired ratios above compare each operation with peers timed in the same rounds. Under
    # heavy load the cost of first-touch page faults swings from round to round, so also give
    # the conservative ratios: each operation against the best peer time seen in this layout.
    print("conservative ratios (vs the best peer times):")
    for row in rows:
        row["x best memcpy"] = best_copy / row["seconds"]
        row["x best sha256"] = best_sha / row["seconds"]
        extra = f", {best_sha / row['seconds']:.2f} x sha256" if "sha256_seconds" in row else ""
        print(f"  {row['op']:40s} {best_copy / row['seconds']:6.2f} x copy{extra}")
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    out[layout] = {"what": what, "payload_bytes": payload, "rows": rows}


def profile_decode(layout: str, args: argparse.Namespace) -> None:
    """Where the time of a zero-copy decode goes: cProfile, the 15 costliest functions."""
    import cProfile
    import pstats

    packet, what = build_packet(layout, args.mib, args.dim)
    buf = codec.encode(packet)
    codec.decode(buf, verify_tensors=False)  # warm
    print(f"\n## profile of decode(buf, verify_tensors=False), layout '{layout}': {what}")
    profiler = cProfile.Profile()
    profiler.enable()
    codec.decode(buf, verify_tensors=False)
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)


def _collector_running() -> Any:
    """A context in which the codec's pauses of the garbage collector do nothing."""
    import contextlib

    try:
        from m2kt_ref.packet import bulk
    except ImportError:  # code from before the pauses: nothing to undo
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    for module in (codec, bulk):
        if hasattr(module, "gc_paused"):
            stack.enter_context(_patched(module, "gc_paused", contextlib.nullcontext))
    return stack


def _patched(module: Any, name: str, value: Any) -> Any:
    import contextlib

    @contextlib.contextmanager
    def patch() -> Any:
        saved = getattr(module, name)
        setattr(module, name, value)
        try:
            yield
        finally:
            setattr(module, name, saved)

    return patch()


def validate_with_collector(raw: Any) -> Any:
    with _collector_running():
        return codec.validate_body(raw)


def bench_validation(args: argparse.Namespace, out: dict[str, Any]) -> None:
    from m2kt_ref.packet.rules import iter_semantic_errors

    rng = np.random.default_rng(1)
    n, dim = args.concepts, 8
    edges = random_edges(n, args.edges, rng)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    packet = codec.assemble(
        fields_for(n, dim, edges), {f"e{i}": tz.encode(vectors[i]) for i in range(n)}, workers=1
    )
    buf = codec.encode(packet)
    raw = codec.decode_strict_cbor(packet.body_bytes, codec.DEFAULT_LIMITS, "/body")
    body = PacketBody.model_validate(raw)
    peer = lambda: PacketBody.model_validate(raw)  # noqa: E731
    ops: dict[str, Callable[[], Any]] = {
        "validate_body: limits, version, structure, semantics": lambda: codec.validate_body(raw),
        "  the same with the garbage collector running": lambda: validate_with_collector(raw),
        "  of which semantics alone": lambda: list(iter_semantic_errors(body)),
        "decode: CBOR, canonical checks, validate_body": lambda: codec.decode(
            buf, verify_tensors=False
        ),
        "  of which strict CBOR decode of the body": lambda: codec.decode_strict_cbor(
            packet.body_bytes, codec.DEFAULT_LIMITS, "/body"
        ),
        "  of which model -> canonical CBOR": lambda: codec.canonical_cbor(body.to_data()),
    }
    if args.jsonschema:
        from m2kt_ref.packet import schema

        ops["for reference: jsonschema, body schema"] = lambda: list(
            schema.iter_errors(raw, schema.BODY)
        )
    print(
        f"\n## validation: {n} concepts, {len(edges)} edges, {n} tensor descriptors, "
        f"{len(packet.body_bytes) / MiB:.1f} MiB of body CBOR"
    )
    rows = []
    for name, fn in ops.items():
        reps = 1 if "jsonschema" in name else args.repeats
        best = best_times({"op": fn, "pydantic": peer}, reps)
        rows.append(
            {
                "op": name.strip(),
                "seconds": best["op"],
                "pydantic_seconds": best["pydantic"],
                "x pydantic": best["op"] / best["pydantic"],
            }
        )
        print(
            f"{name:56s} {best['op'] * 1e3:7.0f} ms  {best['op'] / best['pydantic']:5.2f} x"
            f" pydantic ({best['pydantic'] * 1e3:.0f} ms)"
        )
    out["validation"] = {
        "concepts": n,
        "edges": len(edges),
        "body_bytes": len(packet.body_bytes),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="payload size in MiB")
    parser.add_argument("--dim", type=int, default=16384, help="embedding width")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concepts", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=100_000)
    parser.add_argument(
        "--layouts", default="many,manifold", help="payload layouts: many, manifold or both"
    )
    parser.add_argument(
        "--jsonschema", action="store_true", help="also time jsonschema (minutes at 10^5 edges)"
    )
    parser.add_argument("--tmp", default=None, help="directory for the file benchmarks")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument(
        "--profile", action="store_true", help="only print a profile of decode per layout"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )
    out: dict[str, Any] = {"args": vars(args)}
    layouts = [layout for layout in args.layouts.split(",") if layout]
    if args.profile:
        for layout in layouts:
            profile_decode(layout, args)
        return
    for layout in layouts:
        bench_payload(args, layout, out)
    bench_validation(args, out)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the whole run: {peak_rss:.0f} MiB")
    out["peak_rss_mib"] = peak_rss
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
