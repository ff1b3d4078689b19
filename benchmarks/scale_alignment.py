"""Scale curve: Concept Alignment Layer fit time against the number of anchors and the width.

For each width ``d`` (teacher and student alike, ``d_T = d_S = d``) and anchor count ``n``:
synthetic anchors ``x ~ N(0, 1)`` ``[n, d]``, ``y = x M + 0.1 noise`` (seeded), and one fit of
``ridge`` (the default map, ``lam="auto"``: generalised cross-validation from one
eigendecomposition) and of ``procrustes`` (scaled orthogonal map, one SVD), each as one point in
its own child process (best of up to 5 fits, at least 0.3 s in all; inputs built first and not
counted in the memory). torch on one thread (``torch.set_num_threads(1)``), CPU.

Grid: ``d`` in 64, 256, 1024, 4096 and ``n`` in 10^3 ... 10^6, **skipping points where the two
input matrices alone exceed 2 GiB** (``2 n d`` float32 values; a fit holds centred copies too):
``d = 1024`` stops at ``n = 10^5`` and ``d = 4096`` at ``n = 10^4`` on the project's shared
24 GiB machine (``--max-gib`` moves the cap).

Usage (the figures and docs/scale_alignment.png in docs/performance.md, ## Scale curves)::

    python benchmarks/scale_alignment.py                  # the grid above
    python benchmarks/scale_alignment.py --quick          # d = 32, n = 200 and 1000, no plot
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    curve_args,
    curve_report,
    loglog_slope,
    machine_line,
    measure_point,
    print_point,
    saved_run,
)

WIDTHS = [64, 256, 1024, 4096]
COUNTS = [1_000, 10_000, 100_000, 1_000_000]
METHODS = ["ridge", "procrustes"]
CAP_GIB = 2.0


def setup(n: int, d: int) -> tuple[Any, Any]:
    import torch

    from m2kt_ref.transfer.student.align import fit_alignment

    torch.set_num_threads(1)
    warm = torch.randn(64, 8)
    for method in METHODS:  # lazy imports and LAPACK workspaces, outside the measurement
        fit_alignment(method, warm, warm)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    m = torch.randn(d, d, generator=g) / d**0.5
    y = x @ m
    y += 0.1 * torch.randn(n, d, generator=g)
    return x, y


def op_fit(state: tuple[Any, Any], method: str) -> dict[str, Any]:
    from m2kt_ref.transfer.student.align import fit_alignment

    x, y = state
    fit_alignment(method, x, y)
    return {}


def op_ridge(state: tuple[Any, Any]) -> dict[str, Any]:
    return op_fit(state, "ridge")


def op_procrustes(state: tuple[Any, Any]) -> dict[str, Any]:
    return op_fit(state, "procrustes")


OPS = {"ridge": op_ridge, "procrustes": op_procrustes}


def measure(
    args: Any, widths: list[int], counts: list[int], max_gib: float
) -> list[dict[str, Any]]:
    """Run every point (each in its own child process) and print its row."""
    print("| fit | anchors | best s | calls | peak added MiB | µs per anchor |")
    print("|---|---|---|---|---|---|")
    rows, skipped = [], []
    for d in widths:
        for n in counts:
            if args.max and n > args.max:
                continue
            if 2 * n * d * 4 > max_gib * 2**30:
                skipped.append(f"d={d}, n={n:,}")
                continue
            for method in METHODS:
                row = measure_point(setup, OPS[method], n, d, preload=["torch"])
                row.update(series=f"{method}, d={d}", x=n, d=d, method=method)
                rows.append(row)
                print_point(row["series"], n, row, f"{row['seconds'] / n * 1e6:.2f}")
    if skipped:
        print(f"skipped (inputs over {max_gib} GiB): {'; '.join(skipped)}")
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--max-gib", type=float, default=CAP_GIB)
    known, rest = extra.parse_known_args(argv)
    args = curve_args(__doc__.split("\n\n")[0], "scale_alignment.png", rest)
    widths, counts = ([32], [200, 1_000]) if args.quick else (WIDTHS, COUNTS)
    print(machine_line(threads=1) + f"; inputs capped at {known.max_gib} GiB")
    saved = saved_run(args)
    rows, note = (
        saved if saved else (measure(args, widths, counts, known.max_gib), machine_line(threads=1))
    )
    print("\n| fit | anchors | time slope against the width d (all widths run) |")
    print("|---|---|---|")
    for method in METHODS:
        for n in counts:
            pts = [(r["d"], r["seconds"]) for r in rows if r["method"] == method and r["x"] == n]
            if len(pts) > 1:
                slope = loglog_slope([p[0] for p in pts], [p[1] for p in pts])
                print(f"| {method} | {n:,} | {slope:.2f} ({len(pts)} widths) |")
    curve_report(
        "alignment: fit time against anchors (d_T = d_S = d, torch CPU, 1 thread)",
        "anchors n",
        rows,
        args.png,
        args.json,
        note=note,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
