"""Worst-case inputs of the reader (issue 13.2): time and peak memory of ``m2kt`` on them.

Each input is valid and within the default limits, and is shaped to make the metadata path work
hard per byte:

* ``empty maps``: a CBOR packet whose ``provenance.parameters`` holds one array of ``n`` empty
  maps (one byte each; the issue's case was 16.8 MB);
* ``json keys``: the JSON form of a packet whose ``provenance.parameters`` has ``n`` keys (the
  issue's case: 7 MB, 500k keys);
* ``demo``: the demo packet, for the baseline (interpreter, imports).

Each input is built in a process of its own, and each command (``m2kt validate``, ``m2kt
inspect``, ``m2kt convert``) runs in its own process started from this small one;
peak memory is that process's maximum resident size (``wait4``), and the table also gives it
per input byte above the demo baseline.

Usage::

    python benchmarks/worst_case.py            # the issue's sizes (minutes)
    python benchmarks/worst_case.py --quick    # small inputs, validate only (seconds)
    python benchmarks/worst_case.py --scale 0.25
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EMPTY_MAPS = 16_800_000
JSON_KEYS = 500_000


def build(kind: str, n: int, out: Path) -> Path:
    """Write the input ``kind`` with ``n`` items to ``out``."""
    import numpy as np

    from m2kt_ref.packet import codec, demo
    from m2kt_ref.packet import tensors as tz

    packet = demo.demo_packet()
    if kind == "demo":
        codec.write_packet(packet, out)
        return out
    fields = packet.body.to_data()
    fields.pop("tensors")
    tensors = {
        t.name: tz.encode(np.array(packet.tensor_f32(t.name)), "f32") for t in packet.body.tensors
    }
    if kind == "empty maps":
        fields["provenance"]["parameters"] = {"x": [{}] * n}
    else:
        fields["provenance"]["parameters"] = {f"k{i:07d}": i for i in range(n)}
    codec.write_packet(codec.assemble(fields, tensors), out)
    return out


def run(args: list[str]) -> tuple[float, int, int]:
    """(seconds, peak RSS bytes, exit status) of ``m2kt ARGS`` in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "m2kt_ref.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    return seconds, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small inputs, validate only")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the issue's sizes")
    ap.add_argument("--build", nargs=3, metavar=("KIND", "N", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build:
        build(args.build[0], int(args.build[1]), Path(args.build[2]))
        return 0
    scale = 0.01 if args.quick else args.scale
    commands = ["validate"] if args.quick else ["validate", "inspect", "convert"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [
            ("demo", 0, Path(tmp) / "demo.m2kt"),
            ("empty maps", int(EMPTY_MAPS * scale), Path(tmp) / "maps.m2kt"),
            ("json keys", int(JSON_KEYS * scale), Path(tmp) / "keys.json"),
        ]
        print("| input | bytes | command | seconds | peak RSS MiB | bytes per input byte | exit |")
        print("|---|---|---|---|---|---|---|")
        base: dict[str, int] = {}
        for kind, n, path in inputs:
            # built in another process: a child forked from a big parent would report the
            # parent's resident size as its own peak
            subprocess.run(
                [sys.executable, __file__, "--build", kind, str(n), str(path)], check=True
            )
            size = path.stat().st_size
            for cmd in commands:
                extra = ["-o", str(path.with_suffix(".out"))] if cmd == "convert" else []
                if cmd == "convert":
                    extra += ["--to", "cbor" if path.suffix == ".json" else "json"]
                seconds, peak, code = run([cmd, str(path), *extra])
                if kind == "demo":
                    base[cmd] = peak
                per = (peak - base.get(cmd, 0)) / size if kind != "demo" else 0.0
                rows.append(
                    {"input": kind, "bytes": size, "command": cmd, "seconds": seconds,
                     "peak": peak, "per_byte": per, "exit": code}
                )  # fmt: skip
                print(
                    f"| {kind} ({n:,}) | {size:,} | {cmd} | {seconds:.2f} | {peak / 2**20:.0f} "
                    f"| {per:.0f} | {code} |",
                    flush=True,
                )
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
