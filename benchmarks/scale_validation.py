"""Scale curve: validation cost against the number of concepts and edges, 10 to 10^6.

A body of ``n`` concepts (each with a width-8 f32 embedding tensor, so ``n`` tensor
descriptors) and ``n`` random edges over them (is_a edges point to a lower index, so they form
a DAG; the other relations are drawn uniformly). Each operation at each ``n`` is one point,
timed in its own child process (best of up to 5 calls, at least 0.3 s in all) with the memory
it adds above its inputs:

* ``assemble``: :func:`m2kt_ref.assemble` from the fields and encoded tensors (layout, SHA-256
  of each tensor, limits, schema, semantic rules, canonical encoding);
* ``decode``: :func:`m2kt_ref.decode` of the packet bytes without the tensor checks (strict
  CBOR, canonical form, limits, schema, semantic rules);
* ``validate_body``: :func:`m2kt_ref.packet.codec.validate_body` of the decoded raw body
  (limits, version, schema by pydantic, semantic rules);
* ``read + verify``: :func:`m2kt_ref.read_packet` of the file with every tensor checked.

One thread. The packets are built with :class:`m2kt_ref.Limits` raised above the defaults
where 10^6 concepts need it (``max_body_bytes`` 1 GiB); that is stated in the output.

Usage (the figures and docs/scale_validation.png in docs/performance.md, ## Scale curves)::

    python benchmarks/scale_validation.py               # n = 10 ... 10^6
    python benchmarks/scale_validation.py --quick       # n = 10, 100, no plot
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    curve_args,
    curve_report,
    in_subprocess,
    machine_line,
    measure_point,
    print_point,
    saved_run,
)

import m2kt_ref
from m2kt_ref.packet import codec
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.files import read_bytes
from m2kt_ref.packet.model import RELATIONS

COUNTS = [10, 100, 1_000, 10_000, 100_000, 1_000_000]
QUICK = [10, 100]
DIM = 8
LIMITS = m2kt_ref.Limits(max_body_bytes=1 << 30)


def build(n: int) -> tuple[dict[str, Any], dict[str, tz.EncodedTensor]]:
    """Fields and tensors of a body with ``n`` concepts and ``n`` edges (seeded)."""
    rng = np.random.default_rng(n)
    relations = sorted(RELATIONS)
    src = rng.integers(0, n, n).tolist()
    dst = rng.integers(0, n, n).tolist()
    rel = rng.integers(0, len(relations), n).tolist()
    weight = rng.random(n).astype(np.float32).tolist()
    edges = []
    for s, t, r, w in zip(src, dst, rel, weight, strict=True):
        relation = relations[r]
        if relation == "is_a":
            if s == t:
                relation = "similar_to"
            s, t = max(s, t), min(s, t)
        edges.append({"source": f"c{s}", "target": f"c{t}", "relation": relation, "weight": w})
    vectors = rng.standard_normal((n, DIM), np.float32)
    tensors = {f"e{i}": tz.encode(vectors[i]) for i in range(n)}
    fields = {
        "header": {"format": "m2kt", "version": "1.0", "created": "2026-01-01T00:00:00Z"},
        "teacher": {
            "name": "bench",
            "architecture": "transformer",
            "latent_dim": DIM,
            "layer": "final",
            "model_digest": "sha256:" + "0" * 64,
        },
        "concepts": [
            {"id": f"c{i}", "label": f"concept {i}", "kind": "symbol", "embedding": f"e{i}"}
            for i in range(n)
        ],
        "graph": {"edges": edges},
        "traces": [],
        "anchors": [],
        "provenance": {
            "generator": {"name": "benchmarks/scale_validation.py", "version": "1"},
            "task": {"name": "bench", "options": {}},
            "parents": [],
            "task_inputs_used": 0,
            "concept_probes_used": n,
            "parameters": {},
            "seed": 0,
        },
        "safety": {"require_signature": False, "min_signers": 1},
    }
    return fields, tensors


def write_packet_file(n: int, path: str) -> dict[str, Any]:
    fields, tensors = build(n)
    packet = codec.assemble(fields, tensors, workers=1)
    codec.write_packet(packet, path)
    return {"body_bytes": len(packet.body_bytes)}


def op_assemble(state: tuple[dict[str, Any], dict[str, tz.EncodedTensor]]) -> None:
    fields, tensors = state
    codec.assemble(fields, tensors, workers=1)


def setup_bytes(path: str) -> memoryview:
    return read_bytes(path)


def op_decode(buf: memoryview) -> None:
    codec.decode(buf, LIMITS, verify_tensors=False)


def setup_raw(path: str) -> Any:
    buf = read_bytes(path)
    env = codec._split_envelope(buf, LIMITS)
    return codec.decode_strict_cbor(env.body_bytes, LIMITS, "/body", tags=False)


def op_validate(raw: Any) -> None:
    codec.validate_body(raw, LIMITS)


def setup_path(path: str) -> str:
    return path


def op_verify(path: str) -> None:
    codec.decode(read_bytes(path), LIMITS, workers=1)


def measure(args: Any, counts: list[int]) -> list[dict[str, Any]]:
    """Run every point (each in its own child process) and print its row."""
    print("| operation | concepts = edges | best s | calls | peak added MiB | µs per concept |")
    print("|---|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="m2kt-scale-validation-", dir=args.tmp))
    rows = []
    try:
        for n in counts:
            path = str(tmp / f"v{n}.m2kt")
            info = in_subprocess(write_packet_file, n, path, preload=["m2kt_ref", "numpy"])
            points = [
                ("assemble", build, op_assemble, (n,)),
                ("decode", setup_bytes, op_decode, (path,)),
                ("validate_body", setup_raw, op_validate, (path,)),
                ("read + verify", setup_path, op_verify, (path,)),
            ]
            for name, setup, op, point_args in points:
                row = measure_point(setup, op, *point_args, preload=["m2kt_ref", "numpy"])
                row.update(series=name, x=n, body_bytes=info["body_bytes"])
                rows.append(row)
                print_point(name, n, row, f"{row['seconds'] / n * 1e6:.2f}")
            Path(path).unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = curve_args(__doc__.split("\n\n")[0], "scale_validation.png", argv)
    counts = QUICK if args.quick else [n for n in COUNTS if n <= (args.max or 1e12)]
    print(machine_line(threads=1) + f"; limits: max_body_bytes {LIMITS.max_body_bytes}")
    saved = saved_run(args)
    rows, note = saved if saved else (measure(args, counts), machine_line(threads=1))
    curve_report(
        "validation: cost against concepts (= edges = tensor descriptors)",
        "concepts (and edges)",
        rows,
        args.png,
        args.json,
        note=note,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
