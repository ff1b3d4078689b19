"""Scale curve: graph work against the number of concepts, 10 to 10^5.

The graph is a 4-ary tree of ``n`` concepts (``n - 1`` is_a edges, child to parent, depth
``log_4 n``) plus ``n`` random ``similar_to`` edges. Measured, each as one point in its own
child process (best of up to 5 calls, at least 0.3 s in all; inputs built first and not
counted in the memory), on one thread:

* ``is_a cycle check``: :func:`m2kt_ref.packet.rules.iter_cycle_errors`, the validation rule
  (Kahn's algorithm over the is_a edges: sparse, linear);
* ``ancestor closure``: :func:`m2kt_ref.transfer.student.view.hierarchy_closure`, what
  ingestion builds for the hierarchy term: the (concept, ancestor) pairs as sorted ``int64``
  keys, per strongly connected component (issue 13.3; it was a dense ``n x n`` matrix grown by
  ``n x n`` matrix products, ``n^3 log n`` time, before): time and memory linear in the closure's
  size, ``n log_4 n`` pairs here;
* ``linked pairs``: :func:`m2kt_ref.transfer.student.view.linked_pairs`, the adjacency ingestion
  samples unrelated pairs from (``n + 2m`` keys; it was a dense ``n x n`` matrix).

Usage (the figures and docs/scale_graph.png in docs/performance.md, ## Scale curves)::

    python benchmarks/scale_graph.py                # n = 10 ... 10^5
    python benchmarks/scale_graph.py --quick        # n = 10, 100, no plot
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import curve_args, curve_report, machine_line, measure_point, print_point, saved_run

COUNTS = [10, 32, 100, 316, 1_000, 3_162, 10_000, 31_623, 100_000]


def tree(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(child, parent) of a 4-ary tree and (src, dst) of n random extra edges (seeded)."""
    child = np.arange(1, n, dtype=np.int64)
    parent = (child - 1) // 4
    rng = np.random.default_rng(n)
    return child, parent, rng.integers(0, n, n), rng.integers(0, n, n)


def setup_cycle(n: int) -> Any:
    from m2kt_ref.packet.model import Edge

    child, parent, src, dst = tree(n)
    edges = [
        Edge(source=f"c{c}", target=f"c{p}", relation="is_a", weight=1.0)
        for c, p in zip(child.tolist(), parent.tolist(), strict=True)
    ]
    edges += [
        Edge(source=f"c{s}", target=f"c{t}", relation="similar_to", weight=0.5)
        for s, t in zip(src.tolist(), dst.tolist(), strict=True)
    ]
    return SimpleNamespace(graph=SimpleNamespace(edges=edges))


def op_cycle(body: Any) -> dict[str, Any]:
    from m2kt_ref.packet.rules import iter_cycle_errors

    assert not list(iter_cycle_errors(body))
    return {}


def setup_graph(n: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from m2kt_ref.transfer.student.view import hierarchy_closure, linked_pairs

    small = tree(10)
    hierarchy_closure(10, small[0], small[1])  # lazy imports, outside the measurement
    linked_pairs(10, small[0], small[1])
    return (n, *tree(n))


def op_ancestors(state: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    from m2kt_ref.transfer.student.view import hierarchy_closure

    n, child, parent, _, _ = state
    hierarchy_closure(n, child, parent)


def op_linked(state: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    from m2kt_ref.transfer.student.view import linked_pairs

    n, child, parent, src, dst = state
    linked_pairs(n, np.concatenate([child, src]), np.concatenate([parent, dst]))


def measure(args: Any, counts: list[int]) -> list[dict[str, Any]]:
    """Run every point (each in its own child process) and print its row."""
    print("| operation | concepts | best s | calls | peak added MiB | µs per concept |")
    print("|---|---|---|---|---|---|")
    rows = []
    for n in counts:
        points = [
            ("is_a cycle check (validation, sparse)", setup_cycle, op_cycle),
            ("ancestor closure (ingestion, sparse)", setup_graph, op_ancestors),
            ("linked pairs (ingestion, sparse)", setup_graph, op_linked),
        ]
        for name, setup, op in points:
            row = measure_point(setup, op, n, preload=["torch"], timeout=4 * 3600)
            row.update(series=name, x=n)
            rows.append(row)
            print_point(name, n, row, f"{row['seconds'] / n * 1e6:.2f}")
    return rows


def main(argv: list[str] | None = None) -> int:

    args = curve_args(__doc__.split("\n\n")[0], "scale_graph.png", argv)
    counts = [10, 100] if args.quick else [n for n in COUNTS if n <= (args.max or 1e12)]
    print(machine_line(threads=1))
    saved = saved_run(args)
    rows, note = saved if saved else (measure(args, counts), machine_line(threads=1))
    curve_report(
        "graph work: cost against concepts (4-ary is_a tree + n similar_to edges)",
        "concepts n",
        rows,
        args.png,
        args.json,
        note=note,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
