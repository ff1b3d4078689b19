"""Worst-case inputs of the reader (issue 13.2): time and peak memory of ``m2kt`` on them.

Each input is shaped to make the metadata path work hard per byte, and is either within the
default limits (it must be read) or just past one (it must be refused, before the work):

* ``cbor maps``: a CBOR packet whose ``provenance.parameters`` holds an array of ``n`` empty
  maps (one byte each). The issue's case was 16.8 MB; ``at limit`` fills the body to exactly
  ``max_body_items`` (2^22), the densest body a reader must accept; ``body bytes`` fills
  ``max_body_bytes`` (2^28) with them, the largest body the byte limits allow;
* ``no envelope``: the magic tag, then the maps where the envelope's map should be (the reader
  explains what is wrong with a generic decode, which counts the items first);
* ``json maps``: the same in the JSON form's body, and ``beside``: in a member beside the body
  (bounded by 2 × ``max_tensors`` + 8 items);
* ``json keys``: the JSON form of a packet whose ``provenance.parameters`` has ``n`` keys (the
  issue's case: 7 MB, 500k keys);
* ``demo``: the demo packet, for the baseline (interpreter, imports).

Each input is built in a process of its own, and each command (``m2kt validate``, ``m2kt
inspect``, ``m2kt convert``) runs in its own process started from this small one; peak memory is
that process's maximum resident size (``wait4``), and the table also gives it per input byte
above the demo baseline. The run fails unless every input within the limits is read (exit 0) and
every input past one is refused (exit 1 with ``LIMIT_EXCEEDED``; any other failure is shown as
``exit N`` and fails the run).

Usage::

    python benchmarks/worst_case.py            # the issue's sizes and the default limits (minutes)
    python benchmarks/worst_case.py --quick    # small inputs and one refusal, validate only
    python benchmarks/worst_case.py --only json  # the inputs whose label holds "json"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ISSUE_MAPS = 16_800_000
JSON_KEYS = 500_000
MARK = "@@worst-case@@"


def _demo_with_mark() -> Any:
    """The demo packet with ``provenance.parameters.x`` a placeholder string, spliced later."""
    import numpy as np

    from m2kt_ref.packet import codec, demo
    from m2kt_ref.packet import tensors as tz

    packet = demo.demo_packet()
    fields = packet.body.to_data()
    fields.pop("tensors")
    tensors = {
        t.name: tz.encode(np.array(packet.tensor_f32(t.name)), "f32") for t in packet.body.tensors
    }
    fields["provenance"]["parameters"] = {"x": MARK}
    return codec.assemble(fields, tensors)


def _array_head(n: int) -> bytes:
    """The shortest CBOR head of an array of ``n`` items (cbor2 writes it)."""
    import io

    import cbor2

    out = io.BytesIO()
    cbor2.CBOREncoder(out).encode_length(4, n)
    return out.getvalue()


def base_items() -> int:
    """Items of the demo body with ``x`` an empty array (one item, as the mark is): a body with
    ``n`` maps in ``x`` holds this many plus ``n``."""
    from m2kt_ref.packet import cbor_scan

    return cbor_scan.count_items(_demo_with_mark().body_bytes, 1 << 40)


def maps_filling_body_bytes(max_body_bytes: int) -> int:
    """Empty maps in ``x`` that make the body exactly ``max_body_bytes`` long."""
    from m2kt_ref.packet.codec import canonical_cbor

    rest = len(_demo_with_mark().body_bytes) - len(canonical_cbor(MARK))
    n = max_body_bytes - rest
    while len(_array_head(n)) + n + rest > max_body_bytes:
        n -= 1
    return n


def build(kind: str, n: int, out: Path) -> Path:
    """Write the input ``kind`` with ``n`` items to ``out``."""
    from m2kt_ref.packet import codec, demo

    if kind == "demo":
        codec.write_packet(demo.demo_packet(), out)
        return out
    packet = _demo_with_mark()
    if kind == "bare maps":  # the magic tag, then maps where the envelope's map should be
        with open(out, "wb") as f:
            f.write(codec.MAGIC + _array_head(n))
            for start in range(0, n, 1 << 24):
                f.write(b"\xa0" * min(1 << 24, n - start))
        return out
    if kind == "cbor maps":
        mark = codec.canonical_cbor(MARK)
        before, after = packet.body_bytes.split(mark)
        body_len = len(before) + len(_array_head(n)) + n + len(after)
        head, between = codec.envelope_parts(body_len, len(packet.data), signed=False)
        with open(out, "wb") as f:
            f.write(head + before + _array_head(n))
            for start in range(0, n, 1 << 24):
                f.write(b"\xa0" * min(1 << 24, n - start))
            f.write(after + between)
            f.write(packet.data)
        return out
    text = codec.encode_json(packet)
    quoted = json.dumps(MARK).encode()
    if kind == "json keys":
        keys = ",".join(f'"k{i:07d}":{i}' for i in range(n))
        out.write_bytes(text.replace(quoted, ("{" + keys + "}").encode()))
        return out
    if kind == "json beside":  # the body keeps x = [], the maps go into a member beside it
        text = text.replace(quoted, b"[]")
        before, after = text[:1], text[1:]
        opening = b'"y":['
    else:  # "json maps"
        before, after = text.split(quoted)
        opening = b"["
    with open(out, "wb") as f:
        f.write(before + opening)
        for start in range(0, n, 1 << 22):
            count = min(1 << 22, n - start)
            f.write(b",".join([b"{}"] * count) + (b"," if start + count < n else b""))
        f.write(b"]" + (b"," if kind == "json beside" else b"") + after)
    return out


def run(args: list[str]) -> tuple[float, int, int, str]:
    """(seconds, peak RSS bytes, exit status, output) of ``m2kt ARGS`` in a fresh process."""
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "m2kt_ref.cli", *args],
            stdout=output,
            stderr=output,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        output.seek(0)
        text = output.read().decode(errors="replace")
    return seconds, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), text


def main(argv: list[str] | None = None) -> int:
    from m2kt_ref.packet.limits import DEFAULT_LIMITS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small inputs, validate only")
    ap.add_argument("--only", metavar="TEXT", help="only the inputs whose label holds TEXT")
    ap.add_argument("--build", nargs=3, metavar=("KIND", "N", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build:
        build(args.build[0], int(args.build[1]), Path(args.build[2]))
        return 0
    limit = DEFAULT_LIMITS.max_body_items
    at_limit = limit - base_items()
    beside = 2 * DEFAULT_LIMITS.max_tensors + 8
    body_bytes = DEFAULT_LIMITS.max_body_bytes
    # (label, kind, items, read: True when within the limits)
    inputs: list[tuple[str, str, int, bool]] = [("demo", "demo", 0, True)]
    if args.quick:
        inputs += [
            ("cbor maps", "cbor maps", 168_000, True),
            ("cbor maps, 1 past the limit", "cbor maps", at_limit + 1, False),
            ("json keys", "json keys", 5_000, True),
        ]
    else:
        inputs += [
            ("cbor maps, the issue's", "cbor maps", ISSUE_MAPS, False),
            ("cbor maps, no envelope", "bare maps", ISSUE_MAPS, False),
            ("cbor maps, at the limit", "cbor maps", at_limit, True),
            ("cbor maps, 1 past the limit", "cbor maps", at_limit + 1, False),
            ("cbor maps, max_body_bytes", "cbor maps", maps_filling_body_bytes(body_bytes), False),
            ("json maps, the issue's", "json maps", ISSUE_MAPS, False),
            ("json maps, at the limit", "json maps", at_limit, True),
            ("json maps beside the body", "json beside", beside, False),
            ("json keys, the issue's", "json keys", JSON_KEYS, True),
        ]
    if args.only:
        inputs = [i for i in inputs if i[1] == "demo" or args.only in i[0]]
    commands = ["validate"] if args.quick else ["validate", "inspect", "convert"]
    rows: list[dict[str, Any]] = []
    print(
        "| input | items | bytes | command | seconds | peak RSS MiB | bytes per input byte |",
        end="",
    )
    print(" outcome |")
    print("|---|---|---|---|---|---|---|---|")
    base: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, kind, n, readable in inputs:
            path = Path(tmp) / ("input.json" if kind.startswith("json") else "input.m2kt")
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
                seconds, peak, code, output = run([cmd, str(path), *extra])
                if kind == "demo":
                    base[cmd] = peak
                per = (peak - base.get(cmd, 0)) / size if kind != "demo" else 0.0
                refused = code == 1 and "LIMIT_EXCEEDED" in output
                outcome = "read" if code == 0 else "refused" if refused else f"exit {code}"
                ok = (code == 0) if readable else refused
                rows.append(
                    {"input": label, "items": n, "bytes": size, "command": cmd,
                     "seconds": seconds, "peak": peak, "per_byte": per, "ok": ok}
                )  # fmt: skip
                print(
                    f"| {label} | {n:,} | {size:,} | {cmd} | {seconds:.2f} | {peak / 2**20:.0f} "
                    f"| {per:.1f} | {outcome} |",
                    flush=True,
                )
            path.unlink()
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
