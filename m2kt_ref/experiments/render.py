"""Results documents of the transfer experiment: schema check, Markdown report, plot, tables.

Every table in docs/results.md is printed by this module from ``results.json`` files
(``m2kt experiment --summary DIR...``), never typed by hand. ``±`` is the *sample* standard
deviation over seeds (ddof 1), and every table says so.
"""

from __future__ import annotations

import importlib.resources
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

from m2kt_ref.errors import ValidationError
from m2kt_ref.packet.files import write_atomic

__all__ = [
    "RESULTS_SCHEMA",
    "depth_curve_table",
    "headline_table",
    "render_report",
    "results_schema",
    "validate_results",
    "write_json",
    "write_outputs",
    "write_plot",
]

RESULTS_SCHEMA = "results.schema.json"
SD_NOTE = "± is the sample standard deviation over seeds (ddof 1)."


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


def write_outputs(doc: dict[str, Any], outdir: Path) -> None:
    """Validate ``doc`` and write ``results.json``, ``report.md`` and ``transfer.png``."""
    validate_results(doc)
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(doc, outdir / "results.json")
    write_atomic(outdir / "report.md", [render_report(doc).encode()])
    write_plot(doc, outdir / "transfer.png")


# --------------------------------------------------------------------------- cells


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pm(stat: dict[str, Any] | None, digits: int = 3) -> str:
    """``mean ± sd``; ``—`` when undefined, with how many seeds left it undefined."""
    if not stat:
        return "—"
    m, s, values = stat.get("mean"), stat.get("std"), stat.get("values", [])
    if m is None:
        return "—"
    text = _f(m, digits) if not s else f"{_f(m, digits)} ± {_f(s, digits)}"
    missing = sum(v is None for v in values)
    return text + (f" ({len(values) - missing} of {len(values)} seeds)" if missing else "")


def _pct(stat: dict[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    scaled = {**stat, "mean": 100 * stat["mean"], "std": 100 * (stat.get("std") or 0.0)}
    return _pm(scaled, 1) + " %"


def _verdict(s: dict[str, Any], seeds: int, target: float) -> str:
    """Which control explains the result, in words (spec/algorithms.md §5.3)."""
    if "accuracy" not in s:
        return "—"
    above = s.get("above_chance_seeds", 0)
    if above == 0:
        return "at chance"
    acc = s["accuracy"].get("mean") or 0.0
    notes = [] if above == seeds else [f"above chance in {above}/{seeds} seeds"]
    carried = s.get("packet_carried_answers", {}).get("values", [])
    if carried and all(bool(v) for v in carried if v is not None):
        if acc >= target:
            notes.append("matches the answer-key reader: the packet carried the answers")
        else:
            notes.append("below the answer-key reader: it learned less than the packet carried")
        return "; ".join(notes)
    same = (s.get("same_prior") or {}).get("mean")
    if same is not None and same >= acc - 0.01:
        notes.append("the same-prior control matches")
    return "; ".join(notes) or "beats every control"


# --------------------------------------------------------------------------- report


def render_report(doc: dict[str, Any]) -> str:
    """The Markdown report of one results document."""
    t = doc["teacher"]
    floor = doc["information_floor"]
    env = doc["environment"]
    lines = [
        f"### Transfer experiment: {doc['task']} ({doc['scale']})",
        "",
        f"Task options `{json.dumps(doc['task_options'], sort_keys=True)}`; seeds {doc['seeds']}; "
        f"teacher {t['net']['family']} (seed {t['seed']}), test accuracy **{t['accuracy']:.4f}** "
        f"on {t['test_size']} held-out problems; chance (best constant answer) "
        f"{t['chance_accuracy']:.3f}; target {doc['target_accuracy']:.4f} (90 % of the teacher); "
        f"transfer pool {t['pool_size']} problems; information floor **{floor['label_equivalents']}"
        f"** label-equivalents ({floor['rule']}). Wall time {doc['wall_seconds']:.0f} s on "
        f"{env['cpu_model']} ({', '.join(env['cpu_flags']) or 'no flags read'}), "
        f"{env['threads']} thread(s), torch {env['torch']}.",
        "",
    ]
    warm = any("kd_warm_curve" in s for s in doc["students"].values())
    if warm:
        lines += _warm_table(doc)
    else:
        lines += _headline_rows(doc)
    lines += ["", SD_NOTE, ""]
    lines += _packet_table(doc)
    lines += _curve_table(doc)
    if doc["ablations"]:
        lines += _ablation_table(doc)
    return "\n".join(lines) + "\n"


def _headline_rows(doc: dict[str, Any]) -> list[str]:
    seeds = len(doc["seeds"])
    rows = [
        "#### Headline per student",
        "",
        "| student | M2KT acc | relative | label-eq. | × floor | answer-key reader | same-prior "
        "control | KD on M2KT's inputs | KD rows to match | data reduction | KD rows to 90 % | "
        "verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in doc["students"].items():
        if "accuracy" not in s:
            continue
        rows.append(
            f"| {name} | {_pm(s['accuracy'])} | {_pct(s.get('relative'))} | "
            f"{_pm(s['label_equivalents'], 0)} | {_pm(s.get('floor_multiple'), 2)} | "
            f"{_pm(s.get('answer_key'))} | {_pm(s.get('same_prior'))} | "
            f"{_pm(s.get('kd_same_inputs'))} | {_pm(s.get('kd_inputs_to_match'), 0)} | "
            f"{_pct(s.get('data_reduction'))} | {_pm(s.get('kd_inputs_to_target'), 0)} | "
            f"{_verdict(s, seeds, doc['target_accuracy'])} |"
        )
    g = doc.get("generic_kd_to_target") or {}
    if g.get("rows"):
        fractions = ", ".join(
            f"{n} {100 * f:.2f} %" for n, f in g["label_equivalents_fraction"].items()
        )
        rows += [
            "",
            f"The generic student whose KD needs the fewest rows for 90 % of the teacher "
            f"({g['student']}) needs {g['rows']:.0f}; M2KT students that reach 90 % use, as a "
            f"fraction of that: {fractions or 'none reaches 90 %'}.",
        ]
    rows += [
        "",
        "Label-equivalents count task rows whose label reached the student, operator facts and "
        "declared facts; a generic student's M2KT is self-distillation from the concept-state "
        "student, so it carries that student's count plus synthetic rows (below). KD rows to "
        "match: rows logit KD on the same student needs for M2KT's accuracy (only where M2KT "
        "beats chance, binomial p < 0.05); data reduction = 1 − label-eq. / that.",
    ]
    return rows


def _warm_table(doc: dict[str, Any]) -> list[str]:
    rows = [
        "#### Does the teacher's concept geometry cut what KD needs?",
        "",
        "| student | KD rows to 90 % (cold) | KD rows to 90 % (geometry written first) | "
        "data reduction |",
        "|---|---|---|---|",
    ]
    for name, s in doc["students"].items():
        rows.append(
            f"| {name} | {_pm(s.get('kd_inputs_to_target'), 0)} | "
            f"{_pm(s.get('warm_inputs_to_target'), 0)} | {_pct(s.get('data_reduction'))} |"
        )
    return rows


def _packet_table(doc: dict[str, Any]) -> list[str]:
    p = doc["per_seed"][0]["packet"]
    sel = p["trace_selection"]
    rows = [
        "#### Packet (seed " + str(doc["per_seed"][0]["seed"]) + ")",
        "",
        f"{p['traces']} traces chosen by `{sel['method']}` among {sel['candidates']} candidates, "
        f"covering {sel['covered']} of the {sel['exercised']} transitions the teacher's decoded "
        f"steps exercise; {p['trace_step_labels']} step labels; {p['operator_entries']} operator "
        f"entries; edges by derivation {json.dumps(p['edges_by_derivation'], sort_keys=True)}; "
        f"{p['bytes']} bytes, signature verified. Teacher side: {p['teacher_side_task_inputs']} "
        f"task inputs decoded to choose the traces (their labels do not reach the student), "
        f"{p['teacher_side_operator_probes']} operator probes, {p['teacher_side_concept_probes']} "
        f"concept probes. Answer-key reader: {p['answer_key_accuracy']:.3f}.",
        "",
    ]
    accounts = {n: s["account"] for n, s in doc["students"].items() if "account" in s}
    if accounts:
        keys = list(next(iter(accounts.values())))
        rows += [
            "| student | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
            "|---|" + "---|" * len(keys),
        ]
        for n, a in accounts.items():
            rows.append(f"| {n} | " + " | ".join(_pm(a[k], 0) for k in keys) + " |")
        rows.append("")
    return rows


def _curve_table(doc: dict[str, Any]) -> list[str]:
    cols = []
    for n, s in doc["students"].items():
        if s["kd_curve"]:
            cols.append((f"{n} KD", s["kd_curve"]))
        if "kd_warm_curve" in s:
            cols.append((f"{n} KD, geometry first", s["kd_warm_curve"]))
    if not cols:
        return []
    grid = [p["inputs"] for p in cols[0][1]]
    rows = [
        "#### KD curve (test accuracy against rows labelled by the teacher)",
        "",
        "| rows | " + " | ".join(c for c, _ in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for i, n in enumerate(grid):
        rows.append(f"| {n} | " + " | ".join(_pm(curve[i]) for _, curve in cols) + " |")
    rows.append("")
    return rows


def _ablation_table(doc: dict[str, Any]) -> list[str]:
    rows = [
        "#### Ablations (concept-state student)",
        "",
        "| variant | accuracy | label-eq. | answer-key reader |",
        "|---|---|---|---|",
    ]
    for n, a in doc["ablations"].items():
        rows.append(
            f"| {n} | {_pm(a['accuracy'])} | {_pm(a['label_equivalents'], 0)} | "
            f"{_pm(a['answer_key'])} |"
        )
    rows.append("")
    return rows


# --------------------------------------------------------------------------- cross-run tables


def headline_table(docs: list[dict[str, Any]]) -> str:
    """One row per (family, student) across results documents: the docs' combined headline."""
    rows = [
        "| family | teacher | student | M2KT acc | relative | label-eq. | floor | × floor | "
        "data reduction vs KD | answer-key reader | same-prior control | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for doc in docs:
        floor = doc["information_floor"]["label_equivalents"]
        for name, s in doc["students"].items():
            if "accuracy" not in s:
                if "kd_warm_curve" in s:
                    rows.append(
                        f"| {doc['task']} | {doc['teacher']['accuracy']:.3f} | {name} "
                        f"(geometry + KD) | — | — | {_pm(s.get('warm_inputs_to_target'), 0)} | "
                        f"{floor} | — | {_pct(s.get('data_reduction'))} | "
                        f"{_pm(doc['answer_key'])} | — | KD rows to 90 %: cold "
                        f"{_pm(s.get('kd_inputs_to_target'), 0)} |"
                    )
                continue
            rows.append(
                f"| {doc['task']} | {doc['teacher']['accuracy']:.3f} | {name} | "
                f"{_pm(s['accuracy'])} | {_pct(s.get('relative'))} | "
                f"{_pm(s['label_equivalents'], 0)} | {floor} | {_pm(s.get('floor_multiple'), 2)} "
                f"| {_pct(s.get('data_reduction'))} | {_pm(s.get('answer_key'))} | "
                f"{_pm(s.get('same_prior'))} | "
                f"{_verdict(s, len(doc['seeds']), doc['target_accuracy'])} |"
            )
    return "\n".join(rows) + "\n\n" + SD_NOTE + "\n"


def depth_curve_table(docs: list[dict[str, Any]], student: str) -> str:
    """Data reduction against the tree's size, one row per results document (hierarchy)."""
    rows = [
        f"| depth | nodes | pool | floor | teacher | {student} acc | label-eq. | "
        "generic KD rows to 90 % | label-eq. / that | pool per fact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for doc in sorted(docs, key=lambda d: d["task_options"].get("depth", 0)):
        s = doc["students"][student]
        floor = doc["information_floor"]["label_equivalents"]
        pool = doc["teacher"]["pool_size"]
        g = doc.get("generic_kd_to_target") or {}
        fraction = (g.get("label_equivalents_fraction") or {}).get(student)
        rows.append(
            f"| {doc['task_options'].get('depth')} | {doc['information_floor']['facts'] + 1} | "
            f"{pool} | {floor} | {doc['teacher']['accuracy']:.3f} | {_pm(s['accuracy'])} | "
            f"{_pm(s['label_equivalents'], 0)} | {_f(g.get('rows'), 0)} | "
            f"{'—' if fraction is None else f'{100 * fraction:.2f} %'} | {pool / floor:.1f} |"
        )
    return "\n".join(rows) + "\n\n" + SD_NOTE + "\n"


# --------------------------------------------------------------------------- plot


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """Accuracy against label-equivalents (log x), one panel per student.

    KD is drawn through the budgets it was measured at (markers on every point), M2KT as a star
    at its label-equivalents, with the chance, teacher and target lines labelled.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(doc["students"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.6), squeeze=False)
    t = doc["teacher"]
    for ax, name in zip(axes[0], names, strict=True):
        s = doc["students"][name]
        for key, style, label in (
            ("kd_curve", "o-", "logit KD (teacher labels)"),
            ("kd_warm_curve", "s--", "KD after the packet's geometry"),
        ):
            if key in s:
                pts = [p for p in s[key] if p["mean"] is not None]
                ax.errorbar(
                    [p["inputs"] for p in pts],
                    [p["mean"] for p in pts],
                    yerr=[p["std"] or 0.0 for p in pts],
                    fmt=style,
                    capsize=3,
                    label=label,
                )
        if "accuracy" in s and s["accuracy"]["mean"] is not None:
            ax.errorbar(
                [max(s["label_equivalents"]["mean"] or 1, 1)],
                [s["accuracy"]["mean"]],
                yerr=[s["accuracy"]["std"] or 0.0],
                fmt="r*",
                markersize=15,
                capsize=3,
                label="M2KT",
            )
        ax.axhline(t["accuracy"], color="green", ls="-", lw=1, label="teacher")
        ax.axhline(doc["target_accuracy"], color="green", ls=":", lw=1.5, label="90 % of teacher")
        ax.axhline(t["chance_accuracy"], color="gray", ls="--", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("label-equivalents (rows labelled by the teacher; log scale)")
        ax.set_ylabel("held-out test accuracy")
        ax.set_title(f"{doc['task']}: {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, [buf.getvalue()])
