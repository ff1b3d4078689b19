#!/usr/bin/env python3
"""Regenerate the spec's generated blocks from the schemas, the error registry and the demo packet.

The spec pages carry blocks between ``<!-- BEGIN GENERATED: key -->`` and
``<!-- END GENERATED: key -->``: field tables (from ``schemas/``), the type, relation and limit
tables, the error registry (from :mod:`m2kt_ref.errors`) and the worked example (the demo
packet's bytes). The tests fail when a block differs from what this script writes::

    python tools/spec_tables.py --write spec/packet-1.1.md spec/errors.md
    python tools/spec_tables.py --check spec/packet-1.1.md spec/errors.md
    python tools/spec_tables.py --error-table      # print the registry table only

It lives outside the library because it writes documentation, not packets.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from m2kt_ref import errors
from m2kt_ref.packet import codec, demo
from m2kt_ref.packet.files import write_atomic
from m2kt_ref.packet.limits import DEFAULT_LIMITS
from m2kt_ref.packet.schema import resolve_local, schema_documents

_TYPE_WORDS = {
    "string": "text",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
    "object": "object",
    "array": "array",
}


def type_name(node: dict[str, Any]) -> str:
    """The spec's name for the type a schema node describes (``array of identifier``...)."""
    if "$ref" in node:
        ref = node["$ref"]
        if "#/$defs/" in ref:
            return ref.rsplit("/", 1)[1]
        return ref.rsplit("/", 1)[-1].removesuffix(".schema.json")
    if "const" in node or "enum" in node:
        return "text"
    kind = node.get("type")
    if isinstance(kind, list):
        words = [_TYPE_WORDS[k] for k in kind]
        return ", ".join(words[:-1]) + " or " + words[-1]
    if kind == "array":
        return "array of " + type_name(node["items"])
    if kind == "object" and "properties" not in node and "additionalProperties" in node:
        return "map of " + type_name(node["additionalProperties"])
    if kind is None and "anyOf" in node:
        kinds = {type_name(branch) for branch in node["anyOf"]}
        return kinds.pop() if len(kinds) == 1 else "any"
    if kind is None:
        return "any"
    return _TYPE_WORDS[kind]


def _number(n: int | float) -> str:
    if isinstance(n, int) and abs(n) >= 1 << 16:
        for k in range(16, 65):
            if abs(n) == 1 << k:
                return ("−" if n < 0 else "") + f"2^{k}"
            if n == (1 << k) - 1:
                return f"2^{k} − 1"
    return str(n).replace("-", "−")


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def constraints(node: dict[str, Any]) -> str:
    """Human-readable constraints of a schema node (those not already named by its type)."""
    parts = []
    if "const" in node:
        parts.append("= " + _code(json.dumps(node["const"])))
    if "enum" in node:
        parts.append("one of " + ", ".join(_code(str(v)) for v in node["enum"]))
    if "pattern" in node:
        parts.append("pattern " + _code(node["pattern"]))
    low = node.get("minimum")
    high = node.get("maximum")
    if "exclusiveMinimum" in node:
        parts.append("> " + _number(node["exclusiveMinimum"]))
    elif low is not None and high is not None:
        parts.append(f"{_number(low)} ≤ value ≤ {_number(high)}")
    elif low is not None:
        parts.append("≥ " + _number(low))
    elif high is not None:
        parts.append("≤ " + _number(high))
    if "maxLength" in node:
        parts.append(f"at most {node['maxLength']} characters")
    low, high = node.get("minItems"), node.get("maxItems")
    if low is not None and high is not None:
        parts.append(f"{low} to {high} items")
    elif low is not None:
        parts.append(f"at least {low} item" + ("s" if low != 1 else ""))
    elif high is not None:
        parts.append(f"at most {high} items")
    if "propertyNames" in node:
        names = node["propertyNames"]
        described = type_name(names) if "$ref" in names else constraints(names)
        parts.append("keys: " + (_code(described) if "$ref" in names else described))
    return "; ".join(parts) or "—"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def field_table(name: str, pointer: str = "") -> str:
    """Markdown field table of the object schema at ``pointer`` in shipped schema ``name``."""
    node = resolve_local(name, pointer)
    required = set(node.get("required", ()))
    rows = ["| Field | Type | Required | Constraints | Meaning |", "|---|---|---|---|---|"]
    for field, sub in node["properties"].items():
        rows.append(
            f"| `{field}` | {type_name(sub)} | {'yes' if field in required else 'no'} | "
            f"{constraints(sub)} | {_cell(sub.get('description', ''))} |"
        )
    return "\n".join(rows)


def types_table() -> str:
    """Markdown table of the named types in ``common.schema.json``."""
    rows = ["| Type | Base | Constraints | Meaning |", "|---|---|---|---|"]
    for name, node in resolve_local("common.schema.json", "/$defs").items():
        rows.append(
            f"| `{name}` | {type_name(node)} | {constraints(node)} | "
            f"{_cell(node.get('description', ''))} |"
        )
    return "\n".join(rows)


def relations_table() -> str:
    """Markdown table of the relation registry (``graph.schema.json#/$defs/relation``)."""
    rows = ["| Relation | Meaning |", "|---|---|"]
    for branch in resolve_local("graph.schema.json", "/$defs/relation")["anyOf"]:
        name = _code(branch["const"]) if "const" in branch else _code("x-") + " + name"
        rows.append(f"| {name} | {_cell(branch['description'])} |")
    return "\n".join(rows)


def values_table(name: str, pointer: str) -> str:
    """Markdown table of a closed set of text values: an ``anyOf`` of ``const`` s, each with its
    description (the registries of the registered extensions, spec §3.12)."""
    rows = ["| Value | Meaning |", "|---|---|"]
    for branch in resolve_local(name, pointer)["anyOf"]:
        rows.append(f"| {_code(branch['const'])} | {_cell(branch['description'])} |")
    return "\n".join(rows)


#: Where each core code is raised; step numbers refer to spec/packet-1.1.md §10. Codes added
#: later without an entry here show their family's description instead.
RAISED_AT: dict[str, str] = {
    "TRUNCATED": "§10 steps 1–2 (envelope, body CBOR)",
    "CBOR_MALFORMED": "§10 steps 1–2",
    "NOT_A_PACKET": "§10 step 1; JSON form without `m2kt_json` or `body` (§4.5)",
    "NON_CANONICAL": "§10 step 1 (envelope), step 2 (body), step 6 (re-encode identity)",
    "INDEFINITE_LENGTH": "§10 steps 1–2",
    "DUPLICATE_KEY": "§10 steps 1–2; JSON form parsing (§4.5)",
    "TRAILING_BYTES": "§10 steps 1–2",
    "BAD_PADDING": "§10 step 1 (§4.1 pad rule)",
    "JSON_MALFORMED": "JSON form parsing: JSON text, base64, Unicode (§4.5)",
    "LIMIT_EXCEEDED": "§10 steps 1–3 (limits of §8, before allocation)",
    "UNSUPPORTED_VERSION": "§10 step 3 (§9); JSON form `m2kt_json` (§4.5)",
    "CRITICAL_EXTENSION": "§10 step 5 (§9)",
    "SCHEMA_VIOLATION": "§10 step 4; step 5 (registered extension data, §3.12); JSON form "
    "envelope (§4.5)",
    "DUPLICATE_ID": "§10 step 5 (§6)",
    "DANGLING_REFERENCE": "§10 step 5 (§6); JSON form `tensor_data` names (§4.5)",
    "DIMENSION_MISMATCH": "§10 step 5 (§6)",
    "NONFINITE_VALUE": "§10 step 4 (body numbers), step 5 (free-form data), step 7 (tensors)",
    "ISA_CYCLE": "§10 step 5 (§6)",
    "UNKNOWN_RELATION": "§10 step 5 (§3.5)",
    "TENSOR_DTYPE": "§10 step 5 (scale pairing), step 7 (reserved i8 value)",
    "TENSOR_SHAPE": "§10 step 5 (length vs shape); JSON form `tensor_data` length",
    "TENSOR_LAYOUT": "§10 step 5 (offsets), step 7 (data size, zero padding)",
    "TENSOR_DIGEST": "§10 step 7",
    "USAGE": "API calls and command lines, never packet validation",
    "IO_ERROR": "reading and writing files, never packet validation",
}


def error_table() -> str:
    """Markdown table of :data:`m2kt_ref.errors.REGISTRY` (code, family, meaning, where raised)."""
    rows = ["| Code | Family | Meaning | Where raised |", "|---|---|---|---|"]
    for code, meaning in errors.REGISTRY.items():
        family = errors.family_of(code)
        doc = inspect.getdoc(family) or ""
        where = RAISED_AT.get(code) or doc.split("\n\n")[0].replace("\n", " ")
        fname = family.__name__
        rows.append(f"| `{code}` | `{fname}` | {_cell(meaning)} | {_cell(where)} |")
    return "\n".join(rows)


def worked_example() -> str:
    """The worked example of spec §12, computed from :func:`m2kt_ref.packet.demo.demo_packet`."""
    packet = demo.demo_packet()
    chunks = codec.encode_chunks(packet)
    encoded = b"".join(chunks)
    data_start = len(bytes(chunks[0]))
    body_len, data_len = len(packet.body_bytes), len(packet.data)
    pad = codec.pad_length(body_len, data_len)
    h_pad, h_body = len(codec.bstr_header(pad)), len(codec.bstr_header(body_len))
    h_data = len(codec.bstr_header(data_len))
    body_start = 3 + 1 + 4 + h_pad + pad + 5 + h_body
    fixed = data_start - pad
    lines = [
        "```text",
        "m2kt_ref.packet.demo.demo_packet(n=5, dim=8, seed=0), CBOR form",
        f"total size       {len(encoded)} bytes",
        f"pad              {pad} zero bytes",
        f"body             {body_len} bytes at offset {body_start}",
        f"data section     {data_len} bytes at offset {data_start} (= {data_start // 64} × 64)",
        f"tensors          {len(packet.body.tensors)}",
        f"packet id        {packet.packet_id}",
        "",
        "first 96 bytes:",
    ]
    for offset in range(0, 96, 16):
        row = encoded[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset:08x}  {hexes[:23]}  {hexes[24:]}  |{text}|")
    before = encoded[data_start - 5 - h_data : data_start]
    first = packet.body.tensors[0]
    lines += [
        "",
        f'bytes {data_start - len(before)}..{data_start - 1} (key "data", then the header of '
        f"a {data_len}-byte string):",
        "          " + " ".join(f"{b:02x}" for b in before),
        "",
        f"first tensor     {first.name}: {first.dtype} {first.shape}, offset {first.offset}, "
        f"length {first.length}",
        f"  sha256         {first.sha256}",
        "```",
        "",
        "Reading it: `d9 d9 f7` is tag 55799; "
        f"`{encoded[3]:02x}` a map of {encoded[3] & 0x1F} entries; `63 70 61 64` the key "
        f'`"pad"`; `{encoded[8 : 8 + h_pad].hex(" ")}` a byte string of {pad} bytes, the zeros '
        f'of the pad; `64 62 6f 64 79` the key `"body"`; '
        f"`{encoded[body_start - h_body : body_start].hex(' ')}` a byte string of {body_len} "
        f"bytes, the body, which starts with `{packet.body_bytes[0]:02x}` (a map of "
        f"{packet.body_bytes[0] & 0x1F} entries). With a body of {body_len} bytes "
        f"(h = {h_body}) and a data section of {data_len} (h = {h_data}), the data contents "
        f"start at offset 3 + 1 + 4 + {h_pad} + n + 5 + {h_body} + {body_len} + 5 + {h_data} "
        f"= {fixed} + n; the smallest n that makes it a multiple of 64 is {pad}, giving "
        f"{data_start}. The packet id is the SHA-256 of the {body_len} body bytes.",
    ]
    return "\n".join(lines)


#: What each limit bounds and the validation step (§10) that checks it.
LIMIT_MEANINGS: dict[str, str] = {
    "max_packet_bytes": "Size of the encoded packet, either encoding; step 1, before parsing.",
    "max_body_bytes": "Length of the body byte string, from its header; step 1, before reading.",
    "max_signature_bytes": "Length of the signatures item; step 1.",
    "max_tensor_bytes": "`length` of one tensor descriptor; step 3, before any tensor is read.",
    "max_tensors": "Entries of `tensors`; step 3.",
    "max_concepts": "Entries of `concepts`; step 3.",
    "max_edges": "Entries of `graph.edges`; step 3.",
    "max_traces": "Entries of `traces`; step 3.",
    "max_trace_steps": "Entries of one trace's `steps`; step 3.",
    "max_anchors": "Entries of `anchors`; step 3.",
    "max_depth": "Nesting of arrays and maps in the body, the body map being depth 1; step 2.",
    "max_body_items": "Data items of the body: every array, map, map key and value, string, "
    "number and simple value once (a map of n entries is 1 + 2n items); step 2, counted before "
    "any item is built.",
}


def limits_table() -> str:
    """Markdown table of the default limits of :class:`m2kt_ref.packet.limits.Limits`."""
    rows = ["| Limit | Default | Bounds |", "|---|---|---|"]
    for name, value in DEFAULT_LIMITS.to_dict().items():
        shown = _number(value) if value >= 1 << 16 else str(value)
        rows.append(f"| `{name}` | {shown} | {_cell(LIMIT_MEANINGS.get(name, '—'))} |")
    return "\n".join(rows)


def _generated(key: str) -> str:
    if key == "types":
        return types_table()
    if key == "relations":
        return relations_table()
    if key == "errors":
        return error_table()
    if key == "example":
        return worked_example()
    if key == "limits":
        return limits_table()
    if key.startswith("fields "):
        name, _, pointer = key.removeprefix("fields ").partition("#")
        return field_table(name, pointer)
    if key.startswith("values "):
        name, _, pointer = key.removeprefix("values ").partition("#")
        return values_table(name, pointer)
    raise ValueError(f"unknown generated block {key!r}")


_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<key>[^>]+?) -->\n)(?P<body>.*?)"
    r"(?P<end><!-- END GENERATED: (?P=key) -->)",
    re.S,
)

#: The one command that regenerates every generated block of the spec.
REGENERATE = "python tools/spec_tables.py --write spec/packet-1.1.md spec/errors.md"


def generated_blocks(text: str) -> dict[str, str]:
    """The generated blocks of a spec page, by key, as they are in ``text``."""
    return {m["key"]: m["body"] for m in _BLOCK.finditer(text)}


def regenerate(text: str, render: Callable[[str], str] = _generated) -> str:
    """``text`` with every generated block replaced by freshly generated content."""
    return _BLOCK.sub(lambda m: m["begin"] + render(m["key"]) + "\n" + m["end"], text)


def main(argv: Sequence[str] | None = None) -> int:
    """Print or rewrite the spec's generated blocks."""
    parser = argparse.ArgumentParser(
        prog="python tools/spec_tables.py", description="Generate the spec's tables."
    )
    parser.add_argument("--error-table", action="store_true", help="print the error registry")
    parser.add_argument("--field-tables", action="store_true", help="print every field table")
    parser.add_argument("--write", nargs="+", metavar="FILE", help="regenerate blocks in FILE")
    parser.add_argument("--check", nargs="+", metavar="FILE", help="exit 1 if a block is stale")
    args = parser.parse_args(argv)
    if args.error_table:
        print(error_table())
    if args.field_tables:
        for name, doc in schema_documents().items():
            if name.startswith("conformance"):
                continue
            if "properties" in doc:
                print(f"\n{name}\n\n{field_table(name)}")
            for key, node in doc.get("$defs", {}).items():
                if "properties" in node:
                    print(f"\n{name}#/$defs/{key}\n\n{field_table(name, '/$defs/' + key)}")
    status = 0
    for path in args.write or ():
        text = Path(path).read_text(encoding="utf-8")
        new = regenerate(text)
        if new != text:
            write_atomic(path, [new.encode("utf-8")])
            print(f"updated {path}")
    for path in args.check or ():
        text = Path(path).read_text(encoding="utf-8")
        if regenerate(text) != text:
            print(f"{path}: generated blocks are stale; run {REGENERATE}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
