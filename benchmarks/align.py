"""Benchmark: alignment fit time against the number of concepts (anchors) and the widths.

For each device, thread count, method, anchor count ``n`` and width pair ``d_T -> d_S``, it times
one fit (after a warm-up fit that absorbs lazy imports and allocator growth) and, just before,
the machine's own float32 matmul throughput (best of 5 products of two 1024 x 1024 matrices), so
each row carries its peer measured under the same load. The fit is reported as a multiple of the
time its dominant matmuls would take at that throughput:

- procrustes: ``Xc^T Yc``, plus ``Xc W`` for the scale when ``d_T > d_S``: ``2 n d_T d_S`` or
  ``4 n d_T d_S`` (the ``d_T x d_S`` SVD is not counted);
- ridge (default ``lam="auto"``) and ridge-fixed (``lam=1e-3``): the Gram on the smaller side
  and the right-hand side: primal ``2 n d_T^2 + 2 n d_T d_S``, dual ``2 n^2 d_T + 2 n d_T d_S``
  (the eigendecomposition for GCV, or the Cholesky factorisation, ``O(min(n, d_T)^3)``, is not
  counted);
- mlp: its ridge initialisation on the training split, plus ``6 b p`` per step (forward and
  backward, ``b`` rows, ``p = d_T d_S + d_T h + h d_S`` multiply-adds per row) and ``2 n_val p``
  per validation pass.

Both wall time and CPU time (all threads of the process) are reported, each against the peer's
rate measured the same way: on a shared machine the wall figures follow the load, the CPU
figures much less (other processes do not consume this process's CPU seconds, though they still
evict its caches). A multiple near 1 means the fit is as fast as its arithmetic allows at the
measured rate; above 1 it is the overhead (centring copies, SVD/eigh/Cholesky, the
optimiser, memory traffic of tall-skinny products). Data: ``x ~ N(0, 1)``,
``y = x M + 0.1 noise``, seeded.

Usage (the figures in docs/performance.md, ## Alignment)::

    python benchmarks/align.py --threads 1             # CPU, one thread; CUDA if present
    python benchmarks/align.py --threads 2 --widths 1024x768 --device cpu
    python benchmarks/align.py --quick                 # smoke run (small sizes)
    python benchmarks/align.py --curve                 # quality against anchor count
    python benchmarks/align.py --threads 1 --counts 1000 --widths 256x192 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m2kt_ref.transfer.student.align import ALIGNERS, anchor_curve, fit_alignment

MLP_OPTIONS = {"steps": 50, "eval_every": 25, "patience": 100, "hidden": 128, "batch_size": 256}
#: benchmark label -> (method, options); "ridge" is the default (lam="auto", GCV by eigh),
#: "ridge-fixed" a fixed lam (Cholesky), to show what the GCV choice costs.
METHOD_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "procrustes": ("procrustes", {}),
    "ridge": ("ridge", {}),
    "ridge-fixed": ("ridge", {"lam": 1e-3}),
    "mlp": ("mlp", MLP_OPTIONS),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all the process's threads) of one call."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def matmul_gflops(device: torch.device, size: int = 1024, repeats: int = 5) -> tuple[float, float]:
    """Float32 GFLOP/s of one ``size x size`` by ``size x size`` product, best of ``repeats``,
    per wall second and per CPU second."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device)
    b = torch.randn(size, size, generator=g).to(device)
    a @ b  # warm-up
    times = [timed(lambda: a @ b, device) for _ in range(repeats)]
    flops = 2 * size**3 / 1e9
    return flops / min(t[0] for t in times), flops / max(min(t[1] for t in times), 1e-9)


def ridge_flops(n: int, d_t: int, d_s: int) -> float:
    if n >= d_t:
        return 2.0 * n * d_t * d_t + 2.0 * n * d_t * d_s
    return 2.0 * n * n * d_t + 2.0 * n * d_t * d_s


def dominant_flops(method: str, n: int, d_t: int, d_s: int) -> float:
    """Multiply-add count x 2 of the dominant matmuls of one fit (see the module doc)."""
    if method == "procrustes":
        return (4.0 if d_t > d_s else 2.0) * n * d_t * d_s
    if method == "ridge":
        return ridge_flops(n, d_t, d_s)
    o = MLP_OPTIONS
    n_val = min(int(n * 0.1), 8192)
    n_val = n_val if n_val >= 2 else 0
    n_train = n - n_val
    h, steps = o["hidden"], o["steps"]
    per_row = d_t * d_s + d_t * h + h * d_s
    batch = min(o["batch_size"], n_train)
    evals = (1 + steps // o["eval_every"]) if n_val else 0
    return (
        ridge_flops(n_train, d_t, d_s)
        + 6.0 * batch * per_row * steps
        + 2.0 * n_val * per_row * evals
    )


def make_data(n: int, d_t: int, d_s: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(n * 7 + d_t * 3 + d_s)
    x = torch.randn(n, d_t, generator=g)
    m = torch.randn(d_t, d_s, generator=g) / d_t**0.5
    y = x @ m
    y += 0.1 * torch.randn(n, d_s, generator=g)
    return x.to(device), y.to(device)


def run(
    device: torch.device,
    threads: int | None,
    counts: list[int],
    widths: list[tuple[int, int]],
    methods: list[str],
) -> list[dict[str, Any]]:
    if threads is not None:
        torch.set_num_threads(threads)
    rows = []
    # Warm-up: lazy imports (the optimiser pulls in torch._dynamo), kernels, allocator.
    xw, yw = make_data(300, 32, 24, device)
    for label in methods:
        method, options = METHOD_OPTIONS[label]
        fit_alignment(method, xw, yw, **options)
    for d_t, d_s in widths:
        for n in counts:
            x, y = make_data(n, d_t, d_s, device)
            for label in methods:
                method, options = METHOD_OPTIONS[label]
                peer_wall, peer_cpu = matmul_gflops(device)
                wall, cpu = timed(
                    lambda m=method, o=options, x=x, y=y: fit_alignment(m, x, y, **o), device
                )
                flops = dominant_flops(method, n, d_t, d_s)
                on_cpu = device.type == "cpu"
                row = {
                    "device": device.type,
                    "threads": threads,
                    "method": label,
                    "n": n,
                    "d_t": d_t,
                    "d_s": d_s,
                    "gflop": flops / 1e9,
                    "fit_wall_s": wall,
                    "fit_cpu_s": cpu if on_cpu else None,
                    "matmul_gflops_wall": peer_wall,
                    "matmul_gflops_cpu": peer_cpu if on_cpu else None,
                    "multiple_wall": wall / (flops / (peer_wall * 1e9)),
                    "multiple_cpu": cpu / (flops / (peer_cpu * 1e9)) if on_cpu else None,
                }
                rows.append(row)
                cpu_cols = (
                    f"{cpu:.3f} | {peer_cpu:.0f} | {row['multiple_cpu']:.2f}"
                    if on_cpu
                    else "- | - | -"
                )
                print(
                    f"| {device.type} | {threads if threads is not None else '-'} | {label} "
                    f"| {n} | {d_t}->{d_s} | {flops / 1e9:.1f} | {wall:.3f} | {peer_wall:.0f} "
                    f"| {row['multiple_wall']:.2f} | {cpu_cols} |",
                    flush=True,
                )
            del x, y
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def curve(methods: list[str], d_t: int = 256, d_s: int = 192, noise: float = 0.3) -> None:
    """Held-out quality against anchors on a synthetic linear map with a non-linear part.

    ``y = x M + 0.5 tanh(x P) + noise`` (P: ``d_T x d_S``), 1000 held-out anchors, one thread.
    """
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    n = 17384
    x = torch.randn(n, d_t, generator=g)
    m = torch.randn(d_t, d_s, generator=g) / d_t**0.5
    p = torch.randn(d_t, d_s, generator=g) / d_t**0.5
    y = x @ m + 0.5 * torch.tanh(x @ p) + noise * torch.randn(n, d_s, generator=g)
    counts = [64, 128, 256, 512, 1024, 4096, 16384]
    print(f"# anchor curve: {d_t}->{d_s}, y = x M + 0.5 tanh(x P) + {noise} noise, 1000 held out")
    print("| method | anchors | cosine | cosine centred | top-1 NN | top-1 CSLS | CKA | residual |")
    print("|---|---|---|---|---|---|---|---|")
    for method in methods:
        options = {} if method != "mlp" else {"steps": 500}
        for point in anchor_curve(method, x, y, counts, seed=0, test_size=1000, **options):
            print(
                f"| {method} | {point['anchors']} | {point['cosine']:.3f} "
                f"| {point['cosine_centred']:.3f} | {point['top1_nn']:.3f} "
                f"| {point['top1_csls']:.3f} | {point['cka']:.3f} | {point['residual']:.3f} |",
                flush=True,
            )


def parse_widths(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        d_t, _, d_s = item.partition("x")
        out.append((int(d_t), int(d_s)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="CPU thread counts, comma-separated")
    parser.add_argument("--counts", default="1000,10000,100000", help="anchor counts")
    parser.add_argument("--widths", default="256x192,1024x768,768x1024", help="d_T x d_S pairs")
    parser.add_argument("--methods", default=",".join(METHOD_OPTIONS))
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--curve", action="store_true", help="print the quality-vs-anchors curve instead"
    )
    args = parser.parse_args(argv)
    if args.curve:
        curve([m for m in args.methods.split(",") if m in ALIGNERS])
        return 0
    counts = [int(c) for c in args.counts.split(",")]
    widths = parse_widths(args.widths)
    if args.quick:
        counts, widths = [500, 2000], [(64, 48), (48, 64)]
    methods = args.methods.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} default threads; mlp options {MLP_OPTIONS}"
    )
    print(
        "| device | threads | method | n | d_T->d_S | GFLOP | fit wall s | matmul GFLOP/s (wall) "
        "| multiple (wall) | fit CPU s | matmul GFLOP/s (CPU) | multiple (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows: list[dict[str, Any]] = []
    if args.device in ("cpu", "all"):
        for t in threads:
            rows += run(torch.device("cpu"), t, counts, widths, methods)
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            print(f"# CUDA: {name}")
            rows += run(torch.device("cuda"), None, counts, widths, methods)
        else:
            print("# CUDA: not available, skipped")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
