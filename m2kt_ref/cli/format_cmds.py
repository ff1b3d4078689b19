"""Format commands: ``demo``, ``inspect``, ``validate`` and ``convert``.

They need only the format half of the library (no torch). ``validate`` turns every input, whatever
its bytes, into coded problems: it must never end in a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from m2kt_ref.cli.common import add_limit_option, limits_from, print_json
from m2kt_ref.errors import DecodeError, LimitError, M2ktError
from m2kt_ref.packet import codec
from m2kt_ref.packet.extensions import read_derivation, read_operators
from m2kt_ref.packet.files import read_bytes
from m2kt_ref.packet.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "EXAMPLES",
    "file_problems",
    "register",
    "run_convert",
    "run_demo",
    "run_inspect",
    "run_validate",
    "summarize",
]

#: How many examples of each kind of item ``inspect`` shows.
EXAMPLES = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the format commands to the ``m2kt`` parser."""
    p = subparsers.add_parser("demo", help="write a small packet with every section filled")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write it")
    p.add_argument("--json-form", action="store_true", help="write the JSON form instead of CBOR")
    _json_flag(p)
    p.set_defaults(handler=run_demo)

    p = subparsers.add_parser("inspect", help="print a readable summary of a packet")
    p.add_argument("file", metavar="FILE")
    add_limit_option(p)
    _json_flag(p)
    p.set_defaults(handler=run_inspect)

    p = subparsers.add_parser(
        "validate", help="check packets (structure, semantics, tensor data); exit 1 if any fails"
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    add_limit_option(p)
    _json_flag(p)
    p.set_defaults(handler=run_validate)

    p = subparsers.add_parser("convert", help="convert a packet between CBOR and the JSON form")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--to", required=True, choices=("json", "cbor"), help="target encoding")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write it")
    add_limit_option(p)
    _json_flag(p)
    p.set_defaults(handler=run_convert)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output (JSON)")


# --------------------------------------------------------------------------- demo


def run_demo(args: argparse.Namespace) -> int:
    from m2kt_ref.packet.demo import demo_packet

    packet = demo_packet()
    encoding = "json" if args.json_form else "cbor"
    codec.write_packet(packet, args.output, encoding=encoding)
    size = Path(args.output).stat().st_size
    if args.json:
        print_json(
            {
                "file": args.output,
                "encoding": encoding,
                "bytes": size,
                "packet_id": packet.packet_id,
            }
        )
    else:
        print(f"wrote {args.output} ({encoding}, {size} bytes), packet {packet.packet_id}")
    return 0


# --------------------------------------------------------------------------- validate


def file_problems(path: str, limits: Limits = DEFAULT_LIMITS) -> list[M2ktError]:
    """Every problem of the packet file at ``path`` (an empty list when it is valid).

    The CBOR form reports all problems of the failing stage (see
    :func:`~m2kt_ref.packet.codec.iter_packet_errors`); the JSON form (first byte ``{``) reports
    all body problems, or else the first problem of its tensor data.
    """
    try:
        buf = read_bytes(path)
    except M2ktError as exc:
        return [exc]
    if codec.sniff_json(bytes(buf[:64])):
        return _json_problems(bytes(buf), limits)
    return list(codec.iter_packet_errors(buf, limits))


def _json_problems(text: bytes, limits: Limits) -> list[M2ktError]:
    try:
        codec.decode_json(text, limits)
    except (DecodeError, LimitError) as exc:
        return [exc]
    except M2ktError as exc:
        # decode_json stops at the first problem; list every problem of the body when it has
        # several (the text parsed within the limits, so parsing it again is safe).
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return [exc]
        body = doc.get("body") if isinstance(doc, dict) else None
        return list(codec.iter_body_errors(body, limits)) or [exc]
    return []


def _problem_line(path: str, exc: M2ktError) -> str:
    return f"{path}: {exc.code}: {exc}"


def run_validate(args: argparse.Namespace) -> int:
    limits = limits_from(args)
    report = []
    for path in args.files:
        problems = file_problems(path, limits)
        report.append(
            {"file": path, "valid": not problems, "errors": [p.to_dict() for p in problems]}
        )
        if not args.json:  # one line per problem, printed as each file is done
            for problem in problems:
                print(_problem_line(path, problem), flush=True)
            if not problems:
                print(f"{path}: valid", flush=True)
    if args.json:
        print_json(report)
    return 0 if all(entry["valid"] for entry in report) else 1


# --------------------------------------------------------------------------- convert


def _read(path: str, limits: Limits) -> codec.Packet | None:
    """The verified packet at ``path``, or None after printing its problem on stderr."""
    try:
        return codec.read_packet(path, limits)
    except M2ktError as exc:
        print(_problem_line(path, exc), file=sys.stderr)
        return None


def run_convert(args: argparse.Namespace) -> int:
    packet = _read(args.file, limits_from(args))
    if packet is None:
        return 1
    codec.write_packet(packet, args.output, encoding=args.to)
    size = Path(args.output).stat().st_size
    if args.json:
        print_json(
            {
                "input": args.file,
                "output": args.output,
                "encoding": args.to,
                "bytes": size,
                "packet_id": packet.packet_id,
            }
        )
    else:
        print(f"wrote {args.output} ({args.to}, {size} bytes), packet {packet.packet_id}")
    return 0


# --------------------------------------------------------------------------- inspect


def summarize(packet: codec.Packet) -> dict[str, Any]:
    """A summary of a packet in JSON types: counts, a few examples, tensors by dtype, signers."""
    body = packet.body
    data = body.to_data(share_free_form=True)  # read only here
    concepts = body.concepts
    edges = body.graph.edges
    by_dtype: dict[str, dict[str, int]] = {}
    for t in body.tensors:
        entry = by_dtype.setdefault(t.dtype, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += t.length
    return {
        "packet_id": packet.packet_id,
        "header": data["header"],
        "teacher": data["teacher"],
        "concepts": {
            "count": len(concepts),
            "by_kind": dict(Counter(c.kind for c in concepts)),
            "with_manifold": sum(c.manifold is not None for c in concepts),
            "examples": [
                {"id": c.id, "label": c.label, "kind": c.kind} for c in concepts[:EXAMPLES]
            ],
        },
        "graph": {
            "edges": len(edges),
            "by_relation": dict(Counter(e.relation for e in edges)),
            "examples": [
                {"source": e.source, "relation": e.relation, "target": e.target, "weight": e.weight}
                for e in edges[:EXAMPLES]
            ],
        },
        "traces": {
            "count": len(body.traces),
            "examples": [
                {
                    "id": t.id,
                    "input": t.input,
                    "answer": t.answer,
                    "steps": [s.concept for s in t.steps],
                    "states": t.states is not None,
                }
                for t in body.traces[:EXAMPLES]
            ],
        },
        "anchors": {
            "count": len(body.anchors),
            "with_concept": sum(a.concept is not None for a in body.anchors),
            "examples": [a.id for a in body.anchors[:EXAMPLES]],
        },
        "provenance": data["provenance"],
        "safety": data["safety"],
        "tensors": {
            "count": len(body.tensors),
            "bytes": sum(t.length for t in body.tensors),
            "by_dtype": by_dtype,
        },
        "extensions": {
            name: {"critical": ext.critical} for name, ext in (body.extensions or {}).items()
        },
        "derivation": _derivation_summary(body),
        "signatures": _signers(packet),
    }


def _derivation_summary(body: Any) -> dict[str, Any] | None:
    """Where the facts came from (format 1.1's registered extensions), or None for 1.0."""
    derivation = read_derivation(body)
    operators = read_operators(body)
    if derivation is None and not operators:
        return None
    out: dict[str, Any] = {"operator_entries": len(operators)}
    if derivation is not None:
        out["edges"] = dict(Counter(derivation.edges))
        out["trace_steps"] = derivation.trace_steps
        sel = derivation.trace_selection
        out["trace_selection"] = None if sel is None else dataclasses.asdict(sel)
    return out


def _signers(packet: codec.Packet) -> list[dict[str, Any]] | dict[str, Any] | None:
    """Who signed (not verified: ``m2kt verify`` does that); None when unsigned."""
    if packet.signatures is None:
        return None
    from m2kt_ref.packet import signing

    try:
        return signing.describe_signers(packet)
    except M2ktError as exc:
        return {"error": exc.to_dict()}


def _render(summary: dict[str, Any], path: str) -> str:
    s = summary
    h, t = s["header"], s["teacher"]
    lines = [
        f"{path}: m2kt packet {s['packet_id']}",
        f"  header     {h['format']} {h['version']}, created {h['created']}"
        + (f", {h['title']!r}" if "title" in h else ""),
        f"  teacher    {_safe(t['name'])} ({_safe(t['architecture'])}), "
        f"latent_dim {t['latent_dim']}, layer {_safe(t['layer'])}, {t['model_digest']}"
        + (f", {t['n_parameters']} parameters" if "n_parameters" in t else ""),
    ]
    c = s["concepts"]
    lines.append(
        f"  concepts   {c['count']} ({_counts(c['by_kind'])}), {c['with_manifold']} with a manifold"
    )
    lines += [f"             {x['id']}  {x['label']!r}  [{x['kind']}]" for x in c["examples"]]
    lines += _more(c["count"], len(c["examples"]))
    g = s["graph"]
    lines.append(f"  graph      {g['edges']} edges ({_counts(g['by_relation'])})")
    lines += [
        f"             {e['source']} -{e['relation']}-> {e['target']}  (weight {e['weight']:g})"
        for e in g["examples"]
    ]
    lines += _more(g["edges"], len(g["examples"]))
    tr = s["traces"]
    lines.append(f"  traces     {tr['count']}")
    lines += [
        f"             {x['id']}: input {x['input']} -> answer {x['answer']}; steps "
        + " > ".join(x["steps"])
        + ("; with states" if x["states"] else "")
        for x in tr["examples"]
    ]
    lines += _more(tr["count"], len(tr["examples"]))
    d = s["derivation"]
    if d is not None:
        sel = d.get("trace_selection")
        lines.append(
            "  derived    edges "
            + (_counts(d["edges"]) if d.get("edges") else "—")
            + f"; trace steps named by {d.get('trace_steps') or 'unstated'}"
            + (
                f"; traces by {sel['method']}: {sel['covered']} of {sel['exercised']} "
                f"{sel['unit']}s covered among {sel['candidates']} candidates"
                if sel
                else ""
            )
            + f"; {d['operator_entries']} operator entries"
        )
    a = s["anchors"]
    lines.append(
        f"  anchors    {a['count']}, {a['with_concept']} tied to a concept"
        + (f": {', '.join(a['examples'])}" if a["examples"] else "")
        + (" ..." if a["count"] > len(a["examples"]) else "")
    )
    p = s["provenance"]
    lines += [
        f"  provenance generator {_safe(p['generator']['name'])} "
        f"{_safe(p['generator']['version'])}; task {_safe(p['task']['name'])} "
        f"{json.dumps(p['task']['options'], sort_keys=True)}",
        f"             task inputs used {p['task_inputs_used']}, "
        f"concept probes {p['concept_probes_used']}, parents {len(p['parents'])}"
        + (f", seed {p['seed']}" if "seed" in p else ""),
    ]
    lines += [f"             parent {x}" for x in p["parents"]]
    sf = s["safety"]
    lines.append("  safety     " + ", ".join(f"{k} {_scalar(v)}" for k, v in sf.items()))
    tz = s["tensors"]
    lines.append(f"  tensors    {tz['count']}, {tz['bytes']} bytes")
    lines += [
        f"             {dtype}: {v['count']} tensors, {v['bytes']} bytes"
        for dtype, v in sorted(tz["by_dtype"].items())
    ]
    ext = s["extensions"]
    lines.append(
        "  extensions "
        + (
            ", ".join(f"{n}{' (critical)' if v['critical'] else ''}" for n, v in ext.items())
            or "none"
        )
    )
    lines.append(f"  signatures {_render_signers(s['signatures'])}")
    return "\n".join(lines)


def _safe(text: str) -> str:
    """Text from the packet as is when printable, else quoted (no control bytes reach a tty)."""
    return text if text.isprintable() else repr(text)


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def _more(total: int, shown: int) -> list[str]:
    return [f"             ... {total - shown} more"] if total > shown else []


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _render_signers(signers: Any) -> str:
    if signers is None:
        return "none (unsigned)"
    if isinstance(signers, dict):
        return f"unreadable: {signers['error']['code']}: {signers['error']['message']}"
    lines = [f"{len(signers)} (listed, not verified: run `m2kt verify`)"]
    for s in signers:
        who = f" {_safe(s['name'])}" if s.get("name") else ""
        line = f"             #{s['index']} kid {s['kid'] or '?'}{who}, {s['alg'] or '?'}"
        line += f", signed {s['signing_time']}" if s.get("signing_time") else ""
        if "error" in s:
            line += f"; {s['error']['code']}: {s['error']['message']}"
        lines.append(line)
    return "\n".join(lines)


def run_inspect(args: argparse.Namespace) -> int:
    packet = _read(args.file, limits_from(args))
    if packet is None:
        return 1
    summary = summarize(packet)
    if args.json:
        print_json({"file": args.file, **summary})
    else:
        print(_render(summary, args.file))
    return 0
