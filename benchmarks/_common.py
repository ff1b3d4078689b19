"""Shared by the benchmarks that compare against a peer and draw scale curves.

* :func:`interleaved` times several operations in rounds, one call of each per round, so a change
  of background load hits them alike (the project's machine has 2 cores shared with other
  sessions' jobs); ratios are taken between best times and, per round, between paired times.
* :func:`in_subprocess` runs one measurement point in a fresh child process and reports the
  peak resident memory it added (``getrusage`` high-water mark, minus the child's resident size
  when it started), so one point's allocations never hide in another's.
* :func:`loglog_slope` and :func:`plot_curves` turn points into the fitted exponent and a PNG.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "in_subprocess",
    "interleaved",
    "loglog_slope",
    "machine_line",
    "measure_point",
    "plot_curves",
    "ratio_summary",
    "saved_run",
]

MiB = 1 << 20


def machine_line(threads: int | None = None) -> str:
    """One line that says where and under what load the figures were taken."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    line = (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}; load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}"
    )
    if threads is not None:
        line += f"; compute threads: {threads}"
    return line


def interleaved(
    fns: dict[str, Callable[[], Any]],
    rounds: int,
    setup: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, list[float]]:
    """Wall seconds of every call, calling each function once per round, in turn.

    ``setup[name]``, when given, runs untimed just before each call of ``fns[name]`` (e.g. to
    remove the file the previous call wrote, so every write makes a new file).
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if setup and name in setup:
                setup[name]()
            if ISOLATE:  # a full run: no garbage of the previous call left to collect
                gc.collect()
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            del result
    return times


def ratio_summary(times: dict[str, list[float]], op: str, peer: str) -> dict[str, float]:
    """``op`` against ``peer``: best time over best time, and the median of per-round ratios."""
    pairs = sorted(a / b for a, b in zip(times[op], times[peer], strict=True))
    return {
        "op_best_s": min(times[op]),
        "peer_best_s": min(times[peer]),
        "x_peer_best": min(times[op]) / min(times[peer]),
        "x_peer_median_paired": pairs[len(pairs) // 2],
    }


def _whole(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> dict[str, Any]:
    _reset_peak()
    start_rss = _rss_bytes()
    result = fn(*args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {**result, "peak_added_bytes": max(0, peak - start_rss)}


def _child(conn: Any, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    try:
        conn.send(_whole(fn, args))
    except BaseException as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _rss_bytes() -> int:
    """Resident set size now (Linux); the high-water mark where /proc is missing."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_CONTEXT: Any = None


def in_subprocess(
    fn: Callable[..., dict[str, Any]],
    *args: Any,
    preload: Sequence[str] = (),
    timeout: float = 3600,
) -> dict[str, Any]:
    """Run ``fn(*args)`` in a child process; its dict result plus ``peak_added_bytes``.

    Children are forked from a server process that has imported ``preload`` (e.g. torch) once,
    so a point costs milliseconds to start and starts with nothing of the other points in
    memory. ``fn`` must be a module-level function of an importable module.

    Raises:
        RuntimeError: the child failed or did not answer within ``timeout`` seconds.
    """
    if not ISOLATE:
        return _whole(fn, args)
    return _run_child(_child, (fn, args), preload, timeout, fn)


def _reset_peak() -> bool:
    """Reset this process's peak resident size to its current size (Linux ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _measure(
    setup: Callable[..., Any],
    op: Callable[[Any], dict[str, Any] | None],
    args: tuple[Any, ...],
    min_seconds: float,
    max_repeats: int,
) -> dict[str, Any]:
    state = setup(*args)
    if ISOLATE:  # a child: little to collect, and nothing of the caller's
        gc.collect()
    isolated = _reset_peak()
    start_rss = _rss_bytes()
    times: list[float] = []
    extra: dict[str, Any] = {}
    while True:
        start = time.perf_counter()
        extra = op(state) or {}
        times.append(time.perf_counter() - start)
        if sum(times) >= min_seconds or len(times) >= max_repeats:
            break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": min(times),
        "repeats": len(times),
        "peak_added_bytes": max(0, peak - start_rss),
        "peak_isolated": isolated,
        **extra,
    }


def _point_child(conn: Any, *args: Any) -> None:
    try:
        conn.send(_measure(*args))
    except BaseException as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


#: Run points in child processes; ``--quick`` turns it off (a smoke run of the same code in one
#: process, fast enough for the test suite; its memory figures are not isolated).
ISOLATE = True


def measure_point(
    setup: Callable[..., Any],
    op: Callable[[Any], dict[str, Any] | None],
    *args: Any,
    preload: Sequence[str] = (),
    timeout: float = 3600,
    min_seconds: float = 0.3,
    max_repeats: int = 5,
) -> dict[str, Any]:
    """Time ``op(setup(*args))`` and the memory it adds, in a fresh child process.

    The child builds the inputs with ``setup`` (not measured), resets its peak resident size to
    the current one (Linux), then calls ``op`` until ``min_seconds`` have passed or
    ``max_repeats`` calls were made. Returns the best time (``seconds``), the number of calls,
    ``peak_added_bytes`` (peak resident size during the calls minus the size before them:
    what the operation needs beyond its inputs, mapped file pages it touches included) and
    whatever ``op`` returned last. With :data:`ISOLATE` off, the same runs in this process
    (one call).
    """
    if not ISOLATE:
        return _measure(setup, op, args, 0.0, 1)
    return _run_child(
        _point_child, (setup, op, args, min_seconds, max_repeats), preload, timeout, op
    )


def _run_child(
    target: Callable[..., None],
    args: tuple[Any, ...],
    preload: Sequence[str],
    timeout: float,
    what: Any,
) -> dict[str, Any]:
    global _CONTEXT
    if _CONTEXT is None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None
        _CONTEXT = multiprocessing.get_context(method)
        if method == "forkserver":
            _CONTEXT.set_forkserver_preload(list(preload))
    parent, child = _CONTEXT.Pipe(duplex=False)
    proc = _CONTEXT.Process(target=target, args=(child, *args))
    proc.start()
    child.close()
    name = getattr(what, "__name__", str(what))
    if not parent.poll(timeout):
        proc.kill()
        proc.join()
        raise RuntimeError(f"{name}: no answer in {timeout} s")
    try:
        result = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"{name}: the child died (exit code {proc.exitcode})") from None
    proc.join()
    if "error" in result:
        raise RuntimeError(f"{name}: {result['error']}")
    return result


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (the exponent of a power law)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    return sxy / sxx if sxx else float("nan")


#: Below this, a memory figure is noise (page and allocator granularity): left out of fits/plots.
MEMORY_FLOOR_MIB = 1.0


def _above_floor(xs: Sequence[float], mibs: Sequence[float]) -> tuple[list[float], list[float]]:
    kept = [(x, m) for x, m in zip(xs, mibs, strict=True) if m >= MEMORY_FLOOR_MIB]
    return [x for x, _ in kept], [m for _, m in kept]


def _tail_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Slope over the larger half of the points (all of them below four): the growth rate
    once fixed costs stop dominating."""
    half = len(xs) // 2 if len(xs) > 3 else 0
    return loglog_slope(xs[half:], ys[half:])


def plot_curves(
    path: Path,
    title: str,
    xlabel: str,
    series: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    note: str = "",
) -> None:
    """Two log-log panels (time, peak memory) with one line per series and its fitted slope.

    ``series`` maps a label to ``(x, seconds, peak MiB)``. Labels ``"kind, group"`` share a
    colour per group and a line style per kind. Memory below :data:`MEMORY_FLOOR_MIB` is left
    out of the memory panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(label.split(", ")[-1] for label in series))
    kinds = list(dict.fromkeys(label.split(", ")[0] for label in series))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12.5, 5))
    for label, (xs, secs, mibs) in series.items():
        parts = label.split(", ")
        if len(parts) > 1:
            colour = colours[groups.index(parts[-1]) % len(colours)]
            style = styles[kinds.index(parts[0]) % len(styles)]
            marker = markers[kinds.index(parts[0]) % len(markers)]
        else:
            colour = colours[list(series).index(label) % len(colours)]
            style, marker = "-", "o"
        ax_t.plot(
            xs,
            secs,
            linestyle=style,
            marker=marker,
            color=colour,
            label=f"{label} (slope {_tail_slope(xs, secs):.2f})",
        )
        mx, mm = _above_floor(xs, mibs)
        if mx:
            ax_m.plot(
                mx,
                mm,
                linestyle=style,
                marker=marker,
                color=colour,
                label=f"{label} (slope {_tail_slope(mx, mm):.2f})",
            )
    for ax, ylabel in ((ax_t, "time (s)"), (ax_m, "peak memory added (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel, fontsize=11)
        ax.set_ylabel(ylabel, fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8.5)
        ax.tick_params(labelsize=10)
    ax_t.set_title("time (best call); slope over the larger half", fontsize=11)
    ax_m.set_title(f"memory added by the call (points >= {MEMORY_FLOOR_MIB:g} MiB)", fontsize=11)
    fig.suptitle(title, fontsize=13)
    if note:
        fig.text(0.5, 0.005, note, ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def script_dir() -> Path:
    """The benchmarks folder (children import the scripts from there)."""
    return Path(__file__).resolve().parent


if str(script_dir()) not in sys.path:
    sys.path.insert(0, str(script_dir()))


def curve_args(description: str, default_png: str, argv: list[str] | None = None) -> Any:
    """The options every scale-curve script takes (``--quick``, ``--json``, ``--png``)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="two tiny points per series")
    parser.add_argument("--json", type=Path, default=None, help="also write the points here")
    parser.add_argument(
        "--png",
        type=Path,
        default=None,
        help=f"plot file (default: docs/{default_png} for a full run, none with --quick)",
    )
    parser.add_argument("--max", type=float, default=None, help="largest x to run")
    parser.add_argument("--tmp", default=None, help="folder for temporary files")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="measure nothing: redo the tables, slopes and plot from a run's --json file",
    )
    args = parser.parse_args(argv)
    global ISOLATE
    ISOLATE = not args.quick
    if args.png is None and not args.quick:
        args.png = script_dir().parent / "docs" / default_png
    return args


def saved_run(args: Any) -> tuple[list[dict[str, Any]], str] | None:
    """The points and machine line of an earlier run (``--from-json``), or None to measure."""
    if args.from_json is None:
        return None
    import json

    doc = json.loads(args.from_json.read_text())
    print(f"points from {args.from_json} (not measured again); that run: {doc['note']}")
    return doc["rows"], doc["note"]


def print_point(series: str, x: float, row: dict[str, Any], extra: str = "") -> None:
    print(
        f"| {series} | {x:,.0f} | {row['seconds']:.4g} | {row['repeats']} "
        f"| {row['peak_added_bytes'] / MiB:,.1f} | {extra} |",
        flush=True,
    )


def curve_report(
    title: str,
    xlabel: str,
    rows: list[dict[str, Any]],
    png: Path | None,
    json_path: Path | None,
    note: str = "",
) -> dict[str, Any]:
    """Slopes per series (all points, and the larger half), the plot and the JSON.

    ``rows`` hold ``series``, ``x``, ``seconds`` and ``peak_added_bytes``.
    """
    series: dict[str, tuple[list[float], list[float], list[float]]] = {}
    for row in rows:
        xs, secs, mibs = series.setdefault(row["series"], ([], [], []))
        xs.append(row["x"])
        secs.append(row["seconds"])
        mibs.append(row["peak_added_bytes"] / MiB)
    slopes = {}
    print(
        "\n| series | points | time slope (all) | time slope (larger half) "
        f"| memory slope (larger half of the points >= {MEMORY_FLOOR_MIB:g} MiB) |"
    )
    print("|---|---|---|---|---|")
    for name, (xs, secs, mibs) in series.items():
        half = len(xs) // 2
        mx, mm = _above_floor(xs, mibs)
        mx, mm = (mx[len(mx) // 2 :], mm[len(mm) // 2 :]) if len(mx) > 3 else (mx, mm)
        slopes[name] = {
            "time_all": loglog_slope(xs, secs),
            "time_upper": loglog_slope(xs[half:], secs[half:]) if len(xs) > 3 else float("nan"),
            "memory_upper": loglog_slope(mx, mm),
            "memory_points": len(mx),
        }
        s = slopes[name]
        print(
            f"| {name} | {len(xs)} | {s['time_all']:.2f} | {s['time_upper']:.2f} "
            f"| {s['memory_upper']:.2f} ({len(mx)} points) |"
        )
    if png is not None:
        plot_curves(png, title, xlabel, series, note)
        print(f"plot: {png}")
    if json_path is not None:
        import json

        json_path.write_text(json.dumps({"note": note, "rows": rows, "slopes": slopes}, indent=2))
    return slopes
