"""Benchmark: sign and verify a packet holding 256 MiB of tensors, against plain SHA-256.

Signing and verifying a large packet is bound by hashing its tensors (the Ed25519 operations take
microseconds). The peer, measured in the same run, is single-threaded ``hashlib.sha256`` over
the same tensor bytes; a ratio of 1.0 means the operation runs as fast as that hash, above 1.0
faster (tensor digests are hashed on a thread pool, one task per tensor).

    sign        = decode the packet, tensor digests checked + add a signature + encode (no write)
    verify      = decode + check every tensor digest + check the COSE signature and trust
    verify_file = the same from the file path, mapped afresh each time (adds its page faults)

sign and verify work on the same memory-mapped bytes as the SHA-256 peer (the file, in the page
cache, mapped once).

``*_ratio`` compares wall times; ``*_cpu_ratio`` compares CPU seconds (all threads), which says
how much work beyond hashing an operation does, whatever the machine's load. Also reports
verifications per second of the small demo packet (whole file, and the signature stage alone on
an already decoded packet).

Usage: ``python benchmarks/signing.py [--mib 256] [--tensors 16] [--repeats 5] [--json OUT]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing
import numpy as np

from m2kt_ref import __version__
from m2kt_ref.packet import codec, signing
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.demo import demo_packet
from m2kt_ref.packet.files import read_bytes
from m2kt_ref.packet.keys import SigningKey
from m2kt_ref.packet.trust import TrustedKey, TrustStore

SEED = 0
KEY = SigningKey(hashlib.sha256(b"m2kt benchmark key").digest())


def big_packet(mib: int, n_tensors: int) -> codec.Packet:
    """A valid packet whose concepts carry ``n_tensors`` manifold tensors of ``mib/n`` MiB."""
    dim = 4096
    rows = max(1, (mib << 20) // (n_tensors * dim * 4))
    rng = np.random.default_rng(SEED)
    tensors: dict[str, tz.EncodedTensor] = {}
    concepts = []
    for i in range(n_tensors):
        tensors[f"c{i}/embedding"] = tz.encode(rng.standard_normal(dim, dtype=np.float32))
        tensors[f"c{i}/directions"] = tz.encode(rng.standard_normal((rows, dim), dtype=np.float32))
        tensors[f"c{i}/variances"] = tz.encode(np.ones(rows, dtype=np.float32))
        concepts.append(
            {
                "id": f"c{i}",
                "label": f"concept {i}",
                "kind": "symbol",
                "embedding": f"c{i}/embedding",
                "manifold": {
                    "directions": f"c{i}/directions",
                    "variances": f"c{i}/variances",
                    "spread": 1.0,
                    "support": 8,
                },
            }
        )
    fields = {
        "header": {"format": "m2kt", "version": "1.0", "created": "2026-01-01T00:00:00Z"},
        "teacher": {
            "name": "benchmark",
            "architecture": "none",
            "latent_dim": dim,
            "layer": "final",
            "model_digest": "sha256:" + "0" * 64,
        },
        "concepts": concepts,
        "graph": {"edges": []},
        "traces": [],
        "anchors": [],
        "provenance": {
            "generator": {"name": "benchmarks/signing.py", "version": __version__},
            "task": {"name": "benchmark", "options": {}},
            "parents": [],
            "task_inputs_used": 1,
            "concept_probes_used": 1,
            "parameters": {"mib": mib, "tensors": n_tensors},
            "seed": SEED,
        },
        "safety": {"require_signature": True, "min_signers": 1},
    }
    return codec.assemble(fields, tensors)


def timed(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU (all threads) seconds of each function, after one warm-up call each.

    The functions are interleaved (one call of each per round), so that a change in the load of
    a shared machine hits all of them alike and their ratios stay meaningful.
    """
    for fn in fns.values():
        fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in fns}


def rate(fn: Callable[[], Any], seconds: float = 2.0) -> float:
    """Calls per second over about ``seconds`` of wall time."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def measure_large(mib: int, n_tensors: int, repeats: int, trust: TrustStore) -> dict[str, Any]:
    """Sign and verify times of a ``mib`` MiB packet read from a file, against SHA-256."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.m2kt"
        packet = big_packet(mib, n_tensors)
        codec.write_packet(sign_packet_fixed(packet), path)
        payload_bytes = len(packet.data)
        del packet
        buf = read_bytes(path)
        data = codec.decode(buf, verify_tensors=False).data

        def sha_single() -> None:
            hashlib.sha256(data).digest()

        def sign() -> None:
            p = codec.decode(buf)  # tensor digests checked before vouching for them
            signed = signing.sign_packet(p.with_signatures(None), KEY, signing_time=0)
            codec.encode_chunks(signed)

        def verify() -> None:
            assert signing.verify_bytes(buf, trust).valid

        def verify_one_thread() -> None:
            assert signing.verify_bytes(buf, trust, workers=1).valid

        def verify_file() -> None:  # maps the file afresh: adds the page faults of reading it
            assert signing.verify_file(path, trust).valid

        t = timed(
            {
                "sha256": sha_single,
                "sign": sign,
                "verify": verify,
                "verify_1_thread": verify_one_thread,
                "verify_file": verify_file,
            },
            repeats,
        )
    sha_wall, sha_cpu = t["sha256"]
    out: dict[str, Any] = {
        "tensor_bytes": payload_bytes,
        "sha256_single_s": round(sha_wall, 4),
        "sha256_single_GBps": round(payload_bytes / 1e9 / sha_wall, 2),
    }
    for name in ("sign", "verify", "verify_1_thread", "verify_file"):
        wall, cpu = t[name]
        out[f"{name}_s"] = round(wall, 4)
        out[f"{name}_ratio"] = round(sha_wall / wall, 2)
        out[f"{name}_cpu_ratio"] = round(sha_cpu / cpu, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--tensors", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    trust = TrustStore([TrustedKey(KEY.public_key, "bench")])

    out: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "mib": args.mib,
        "tensors": args.tensors,
        "repeats": args.repeats,
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    out["large"] = measure_large(args.mib, args.tensors, args.repeats, trust)

    small = sign_packet_fixed(demo_packet())
    blob = codec.encode(small)
    decoded = codec.decode(blob)
    raw_key = nacl.signing.SigningKey(hashlib.sha256(b"raw").digest())
    raw_sig = raw_key.sign(b"x" * 200).signature
    out["small"] = {
        "packet_bytes": len(blob),
        "verify_file_per_s": round(rate(lambda: signing.verify_bytes(blob, trust)), 1),
        "decode_only_per_s": round(rate(lambda: codec.decode(blob)), 1),
        "signature_stage_per_s": round(
            rate(lambda: signing.verify_packet(decoded, trust, check_tensors=False)), 1
        ),
        "sign_per_s": round(
            rate(lambda: signing.sign_packet(decoded.with_signatures(None), KEY, signing_time=0)),
            1,
        ),
        "ed25519_verify_per_s": round(
            rate(lambda: raw_key.verify_key.verify(b"x" * 200, raw_sig)), 1
        ),
    }
    out["load_average_at_end"] = round(os.getloadavg()[0], 2)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


def sign_packet_fixed(packet: codec.Packet) -> codec.Packet:
    return signing.sign_packet(packet, KEY, signing_time=1_767_225_600)


if __name__ == "__main__":
    sys.exit(main())
