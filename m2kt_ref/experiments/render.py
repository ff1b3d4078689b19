"""Results document of the transfer experiment: schema check, Markdown report, plot."""

from __future__ import annotations

import importlib.resources
import json
from functools import cache
from pathlib import Path
from typing import Any

from m2kt_ref.errors import ValidationError
from m2kt_ref.packet.files import write_atomic

__all__ = ["RESULTS_SCHEMA", "results_schema", "validate_results", "write_plot", "write_report"]

RESULTS_SCHEMA = "results.schema.json"


@cache
def results_schema() -> dict[str, Any]:
    """The shipped ``schemas/results.schema.json``."""
    text = importlib.resources.files("m2kt_ref.schemas").joinpath(RESULTS_SCHEMA).read_text()
    return json.loads(text)


def validate_results(doc: dict[str, Any]) -> None:
    """Check a results document against ``schemas/results.schema.json``.

    Raises:
        ValidationError: ``SCHEMA_VIOLATION`` with the path of the first problem.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(results_schema())
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        path = "/" + "/".join(str(p) for p in err.absolute_path)
        raise ValidationError("SCHEMA_VIOLATION", f"results: {err.message}", path=path)


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Write ``doc`` as indented JSON, atomically."""
    write_atomic(path, [(json.dumps(doc, indent=1) + "\n").encode()])


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pm(stat: dict[str, Any], digits: int = 3) -> str:
    m, s = stat.get("mean"), stat.get("std")
    values = stat.get("values", [])
    if m is None:
        return "never" if values else "—"
    missing = sum(v is None for v in values)
    text = _f(m, digits) if not s else f"{_f(m, digits)} ± {_f(s, digits)}"
    return text + (f" (never in {missing}/{len(values)} seeds)" if missing else "")


def _pm_defined(stat: dict[str, Any], digits: int = 3) -> str:
    """Mean ± std over the seeds where the figure is defined, and how many those are."""
    values = stat.get("values", [])
    defined = [v for v in values if v is not None]
    text = _pm({**stat, "values": defined}, digits)
    if len(defined) < len(values):
        text += f" ({len(defined)} of {len(values)} seeds)"
    return text


def render_report(doc: dict[str, Any]) -> str:
    """The Markdown report of a results document."""
    t = doc["teacher"]
    lines = [
        f"# Transfer experiment: {doc['task']} ({doc['scale']})",
        "",
        f"Task options: `{json.dumps(doc['task_options'])}`; seeds {doc['seeds']}; "
        f"teacher {t['net']['family']} w{t['net']['width']} d{t['net']['depth']} "
        f"(seed {t['seed']}), test accuracy **{t['accuracy']:.4f}** on {t['test_size']} "
        f"held-out problems; transfer pool {t['pool_size']} problems. Target for steps-to-90: "
        f"{doc['target_accuracy']:.4f}. Wall time {doc['wall_seconds']:.0f} s "
        f"({doc['environment']['threads']} thread(s), {doc['environment']['device']}).",
        "",
        "## Headline per student",
        "",
        "| student | M2KT acc | relative | inputs used | concept probes | above chance "
        "| KD inputs to match | data reduction | scratch acc (same inputs) | KD acc, full pool |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    n_seeds = len(doc["seeds"])
    for name, s in doc["students"].items():
        kd_full = s["kd"]["full_pool"]
        if s["above_chance"]:
            match = _pm_defined(s["kd_inputs_to_match"], 0)
            reduction = _pm_defined(s["data_reduction"])
        else:
            match = reduction = "— (M2KT at chance)"
        lines.append(
            f"| {name} | {_pm(s['m2kt']['accuracy'])} | {_pm(s['relative_performance'])} | "
            f"{_pm(s['m2kt']['inputs_used'], 0)} | {_pm(s['m2kt']['concept_probes'], 0)} | "
            f"{s['above_chance']}/{n_seeds} | {match} | {reduction} | "
            f"{_pm(s['scratch']['accuracy'])} | {_pm(kd_full['accuracy'])} "
            f"({_pm(kd_full['inputs_used'], 0)} inputs) |"
        )
    lines += [
        "",
        f"Chance level: {t['chance_accuracy']:.3f} (the best constant answer on the test set). "
        "KD inputs to match and data reduction are computed only for seeds where M2KT beats it "
        "(one-sided binomial test, p < 0.05); at chance the match is decided by KD students "
        "that are at chance too.",
    ]
    lines += ["", "## Logit KD curve (accuracy vs task inputs)", ""]
    names = list(doc["students"])
    lines.append("| inputs | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    first = doc["students"][names[0]]["kd"]["curve"]
    for i, pt in enumerate(first):
        cells = []
        for n in names:
            p = doc["students"][n]["kd"]["curve"][i]
            cells.append(
                _f(p["accuracy"]) + (f" ± {_f(p['accuracy_std'])}" if p.get("accuracy_std") else "")
            )
        lines.append(f"| {pt['inputs']} | " + " | ".join(cells) + " |")
    lines += ["", "## M2KT vs number of traces K", ""]
    lines.append("| K | inputs | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for i, pt in enumerate(doc["students"][names[0]]["k_curve"]):
        cells = [_f(doc["students"][n]["k_curve"][i]["accuracy"]) for n in names]
        lines.append(f"| {pt['traces']} | {_f(pt['inputs'], 0)} | " + " | ".join(cells) + " |")
    lines += ["", "## Ablations (accuracy; inputs used)", ""]
    lines.append("| variant | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    row = ["full recipe"] + [
        f"{_pm(doc['students'][n]['m2kt']['accuracy'])}; "
        f"{_pm(doc['students'][n]['m2kt']['inputs_used'], 0)}"
        for n in names
    ]
    lines.append("| " + " | ".join(row) + " |")
    for ab in doc["students"][names[0]]["ablations"]:
        cells = []
        for n in names:
            a = doc["students"][n]["ablations"].get(ab)
            cells.append("—" if a is None else f"{_pm(a['accuracy'])}; {_pm(a['inputs_used'], 0)}")
        lines.append(f"| {ab} | " + " | ".join(cells) + " |")
    lines += ["", "## Compute: optimizer steps to 90 % of teacher accuracy", ""]
    lines.append("| method | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for key, label in (("m2kt", "M2KT"), ("kd_full_pool", "KD, full pool"), ("scratch", "scratch")):
        cells = [_pm(doc["students"][n]["steps_to_90"][key], 0) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Inputs are distinct task problems counted by forward pre-hooks on teacher and student "
        "(spec/algorithms.md §5); concept probes are counted apart; test evaluation is not counted."
    )
    return "\n".join(lines) + "\n"


def write_report(doc: dict[str, Any], path: Path) -> None:
    """Write the Markdown report atomically."""
    write_atomic(path, [render_report(doc).encode()])


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """Accuracy versus task inputs used (log x), every method, one panel per student."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(doc["students"])
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        s = doc["students"][name]
        kd = s["kd"]["curve"]
        ax.plot([p["inputs"] for p in kd], [p["accuracy"] for p in kd], "o-", label="logit KD")
        kc = [p for p in s["k_curve"] if p["inputs"]]
        ax.plot(
            [p["inputs"] for p in kc], [p["accuracy"] for p in kc], "s-", label="M2KT (K traces)"
        )
        m = s["m2kt"]
        ax.plot(
            [max(m["inputs_used"]["mean"] or 1, 1)],
            [m["accuracy"]["mean"]],
            "r*",
            markersize=14,
            label="M2KT (default K)",
        )
        sc = s["scratch"]
        ax.plot(
            [max(sc["inputs_used"]["mean"] or 1, 1)],
            [sc["accuracy"]["mean"]],
            "kx",
            markersize=10,
            label="scratch (M2KT's inputs)",
        )
        for ab, a in s["ablations"].items():
            x = a["inputs_used"]["mean"] or 0
            ax.plot([max(x, 1)], [a["accuracy"]["mean"]], ".", color="gray")
            ax.annotate(ab, (max(x, 1), a["accuracy"]["mean"]), fontsize=6, color="gray")
        ax.axhline(doc["teacher"]["accuracy"], color="green", ls="--", label="teacher")
        ax.axhline(doc["target_accuracy"], color="green", ls=":", label="90 % of teacher")
        ax.set_xscale("log")
        ax.set_xlabel("distinct task inputs used (log)")
        ax.set_ylabel("held-out accuracy")
        ax.set_title(f"{doc['task']}: {name}")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, [buf.getvalue()])
