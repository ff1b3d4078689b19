#!/usr/bin/env python3
"""An independent M2KT 1.1 reader and verifier, written from spec/*.md and schemas/ alone.

It shares no code with the reference library ``m2kt_ref`` and does not use its CBOR library:

* CBOR: the strict decoder and the canonical encoder below (RFC 8949 §3 and §4.2.1);
* structure: ``jsonschema`` with the shipped JSON Schemas (``schemas/*.schema.json``);
* semantics and tensors: plain Python (``struct``, ``hashlib``), no numpy;
* signatures: COSE_Sign (RFC 9052) parsed with the decoder below, Sig_structure built with the
  encoder below, Ed25519 checked with ``pynacl``.

It speaks the conformance protocol (spec/conformance.md §4) on stdin/stdout::

    m2kt conformance run --impl "python conformance/independent/m2kt_indep.py" --profile reader

and is kept short on purpose, as an example for implementers in other languages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import struct
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jsonschema

NAME, VERSION = "m2kt-indep", "1.1.0"
SCHEMA_DIR = Path(
    os.environ.get("M2KT_SCHEMA_DIR", Path(__file__).resolve().parents[2] / "schemas")
)

# Default limits (spec/packet-1.1.md §8).
DEFAULT_LIMITS = {
    "max_packet_bytes": 1 << 34,
    "max_body_bytes": 1 << 28,
    "max_signature_bytes": 1 << 20,
    "max_tensor_bytes": 1 << 33,
    "max_tensors": 1 << 20,
    "max_concepts": 1 << 20,
    "max_edges": 1 << 24,
    "max_traces": 1 << 16,
    "max_trace_steps": 4096,
    "max_anchors": 1 << 20,
    "max_depth": 32,
    "max_body_items": 1 << 22,
}
RELATIONS = {"is_a", "part_of", "implies", "similar_to", "precedes", "inverse_of", "composes_to"}
DTYPE_SIZE = {"f32": 4, "f16": 2, "bf16": 2, "i8": 1}
ALIGN = 64
MAGIC = b"\xd9\xd9\xf7"


class Refused(Exception):
    """The input is refused with a registry code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NotJson:
    """A decoded CBOR value outside the JSON data model (undefined, other simple values)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


class Tagged:
    def __init__(self, tag: int, value: Any) -> None:
        self.tag, self.value = tag, value


# =========================================================================== CBOR decoding


class Decoder:
    """Strict decoder of one CBOR item (RFC 8949 §3) that also notes deterministic-encoding faults.

    Ill-formed input, indefinite lengths, duplicate keys and depth raise at once; a non-minimal
    head, unsorted keys or a float not in its shortest form are remembered in ``noncanonical``
    and reported by the caller once the whole item decoded (well-formedness comes first).
    """

    def __init__(
        self, buf: bytes, *, max_depth: int, tags: bool, max_items: int | None = None
    ) -> None:
        self.buf, self.pos, self.max_depth, self.tags = buf, 0, max_depth, tags
        self.max_items, self.items = max_items, 0
        self.noncanonical: str | None = None

    def _need(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise Refused("TRUNCATED", f"input ends at {len(self.buf)}, item needs {self.pos + n}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def _note(self, what: str) -> None:
        if self.noncanonical is None:
            self.noncanonical = what

    def _head(self) -> tuple[int, int, int | None]:
        """(major type, additional info, argument); the argument is None for indefinite."""
        first = self._need(1)[0]
        major, info = first >> 5, first & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            width = 1 << (info - 24)
            arg = int.from_bytes(self._need(width), "big")
            if major != 7 and arg < (24 if width == 1 else 1 << (4 * width)):
                self._note("non-minimal head")
            return major, info, arg
        if info == 31:
            if major in (2, 3, 4, 5):
                raise Refused("INDEFINITE_LENGTH", "indefinite-length item")
            raise Refused("CBOR_MALFORMED", "break or indefinite head in the wrong place")
        raise Refused("CBOR_MALFORMED", f"reserved additional information {info}")

    def item(self, depth: int = 0) -> Any:
        self.items += 1  # every item counts, map keys included (spec §8 max_body_items)
        if self.max_items is not None and self.items > self.max_items:
            raise Refused("LIMIT_EXCEEDED", f"more than {self.max_items} items")
        major, info, arg = self._head()
        assert arg is not None
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 2:
            return self._need(arg)
        if major == 3:
            try:
                return self._need(arg).decode("utf-8")
            except UnicodeDecodeError:
                raise Refused("CBOR_MALFORMED", "text string is not UTF-8") from None
        if major in (4, 5):
            # ``depth`` counts the arrays, maps and tags around this item; its children lie
            # inside one more (an empty container at the limit holds none: spec §8)
            if arg and depth + 1 > self.max_depth:
                raise Refused("LIMIT_EXCEEDED", f"nesting deeper than {self.max_depth}")
            if major == 4:
                return [self.item(depth + 1) for _ in range(arg)]  # never preallocated
            out: dict[Any, Any] = {}
            seen: set[Any] = set()
            previous = b""
            for _ in range(arg):
                start = self.pos
                key = self.item(depth + 1)
                encoded = self.buf[start : self.pos]
                marker = _key_marker(key, bytes(encoded))
                if marker in seen:
                    raise Refused("DUPLICATE_KEY", f"duplicate map key {key!r}")
                seen.add(marker)
                if bytes(encoded) <= previous:
                    self._note("map keys not in bytewise order")
                previous = bytes(encoded)
                # 1, 1.0 and true are distinct CBOR keys but equal Python dict keys: only text,
                # integer and byte-string keys are stored as themselves
                out[key if type(key) in (str, int, bytes) else marker] = self.item(depth + 1)
            return out
        if major == 6:
            if not self.tags:
                raise Refused("NON_CANONICAL", f"tag {arg} in the body")
            if depth >= self.max_depth:  # a tag is a level too (spec §8)
                raise Refused("LIMIT_EXCEEDED", f"nesting deeper than {self.max_depth}")
            return Tagged(arg, self.item(depth + 1))
        # major 7
        if info < 24:
            return {20: False, 21: True, 22: None}.get(info, NotJson(f"simple {info}"))
        if info == 24:
            if arg < 32:
                raise Refused("CBOR_MALFORMED", "two-byte simple value below 32")
            return NotJson(f"simple {arg}")
        raw = arg.to_bytes(1 << (info - 24), "big")
        value = struct.unpack({25: ">e", 26: ">f", 27: ">d"}[info], raw)[0]
        if bytes([0xE0 | info]) + raw != shortest_float(value):
            self._note("float not in its shortest form")
        return value


def _key_marker(key: Any, encoded: bytes) -> Any:
    """What makes two map keys duplicates: equal CBOR items (RFC 8949 §5.6), so the type
    counts (1, 1.0 and true differ) and two spellings of one integer do not."""
    if type(key) in (str, int, bytes):
        return (type(key).__name__, key)
    if isinstance(key, float):
        return ("float", struct.pack(">d", key))
    if key is None or isinstance(key, bool):
        return ("simple", key)
    return ("raw", encoded)


def decode_item(
    buf: bytes, *, max_depth: int, tags: bool, canonical: bool = True, max_items: int | None = None
) -> Any:
    """Exactly one item; trailing bytes (and, if ``canonical``, encoding faults) refused."""
    d = Decoder(buf, max_depth=max_depth, tags=tags, max_items=max_items)
    value = d.item()
    if d.pos != len(buf):
        raise Refused("TRAILING_BYTES", f"{len(buf) - d.pos} bytes after the item")
    if canonical and d.noncanonical:
        raise Refused("NON_CANONICAL", d.noncanonical)
    return value


# =========================================================================== CBOR encoding


def shortest_float(x: float) -> bytes:
    if math.isnan(x):
        return b"\xf9\x7e\x00"
    for fmt, first in ((">e", 0xF9), (">f", 0xFA)):
        try:
            packed = struct.pack(fmt, x)
        except OverflowError:
            continue
        if struct.unpack(fmt, packed)[0] == x:
            return bytes([first]) + packed
    return b"\xfb" + struct.pack(">d", x)


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | info]) + n.to_bytes(width, "big")
    raise ValueError("integer too large for CBOR")


def canonical(value: Any) -> bytes:
    """Deterministic CBOR (RFC 8949 §4.2.1) of a JSON-model value (bytes allowed)."""
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return shortest_float(value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(3, len(raw)) + raw
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(canonical(v) for v in value)
    if isinstance(value, dict):
        pairs = sorted((canonical(k), canonical(v)) for k, v in value.items())
        return _head(5, len(pairs)) + b"".join(k + v for k, v in pairs)
    raise ValueError(f"cannot encode {type(value).__name__}")


# =========================================================================== structure


def _load_schemas() -> dict[str, Any]:
    docs = {}
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        docs[doc["$id"]] = doc
    return docs


ANNOTATIONS = {"description", "title", "$comment", "examples"}


def _inline(node: Any, base: str, docs: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` replaced by its target (the schemas are not recursive), so
    the validator never resolves references at run time (that would dominate its cost)."""
    if isinstance(node, list):
        return [_inline(v, base, docs) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        url, _, fragment = urljoin(base, node["$ref"]).partition("#")
        target: Any = docs[url]
        for part in filter(None, fragment.split("/")):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        inlined = _inline(target, url, docs)
        rest = {k: _inline(v, base, docs) for k, v in node.items() if k != "$ref"}
        if all(k in ANNOTATIONS for k in rest):
            return inlined
        return {"allOf": [inlined], **rest}
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in ("$id", "$schema", "$defs") or k in ANNOTATIONS:
            continue
        if k in ("properties", "patternProperties", "dependentSchemas"):
            out[k] = {name: _inline(sub, base, docs) for name, sub in v.items()}
        elif k in ("const", "enum", "required"):
            out[k] = v
        elif k == "pattern" and v.endswith("$") and not v.endswith("\\$"):
            # ECMA-262 "$" matches only at the end of the text; Python's also before a final
            # line feed, so "sha256:…\n" would pass. "\Z" is ECMA's "$" in Python.
            out[k] = v[:-1] + "\\Z"
        else:
            out[k] = _inline(v, base, docs)
    return out


def _strict_types() -> jsonschema.TypeChecker:
    """CBOR keeps integers and floats apart: 4.0 is not an integer here (unlike JSON Schema)."""
    base = jsonschema.Draft202012Validator.TYPE_CHECKER
    return base.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)
    ).redefine("number", lambda _, v: isinstance(v, (int, float)) and not isinstance(v, bool))


_VALIDATORS: dict[str, jsonschema.protocols.Validator] = {}
SCHEMA_BASE = "https://m2kt.dev/schemas/1.0/"
#: The extensions registered by format 1.1 (packet-1.1.md §3.12, §9), with their data's schema.
REGISTERED = {"derivation": "ext-derivation.schema.json", "operators": "ext-operators.schema.json"}


def validator(name: str) -> jsonschema.protocols.Validator:
    """Draft 2020-12 validator of a shipped schema, all references inlined, strict number types."""
    if name not in _VALIDATORS:
        docs = _load_schemas()
        url = SCHEMA_BASE + name
        cls = jsonschema.validators.extend(
            jsonschema.Draft202012Validator, type_checker=_strict_types()
        )
        _VALIDATORS[name] = cls(_inline(docs[url], url, docs))
    return _VALIDATORS[name]


def body_validator() -> jsonschema.protocols.Validator:
    return validator("body.schema.json")


#: Paths (with * for any index or key) of the fields the spec types as floats.
FLOAT_FIELDS = (
    ("graph", "edges", "*", "weight"),
    ("traces", "*", "steps", "*", "similarity"),
    ("concepts", "*", "manifold", "spread"),
    ("safety", "max_parameter_drift"),
    ("safety", "max_output_divergence"),
    ("safety", "max_capability_drop"),
    ("tensors", "*", "scale"),
)


def _at(value: Any, pattern: tuple[str, ...], path: tuple[Any, ...] = ()) -> Iterator[tuple]:
    if not pattern:
        yield path, value
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        items = enumerate(value) if isinstance(value, list) else []
        for i, v in items:
            yield from _at(v, rest, (*path, i))
    elif isinstance(value, dict) and head in value:
        yield from _at(value[head], rest, (*path, head))


def _walk(value: Any, depth: int = 0) -> Iterator[Any]:
    yield value
    if isinstance(value, list):
        for v in value:
            yield from _walk(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _walk(v, depth + 1)


def _schema_errors(body: Any) -> list[jsonschema.ValidationError]:
    """Schema errors, minus those the spec reports with a more specific code later."""
    out = []
    for error in body_validator().iter_errors(body):
        path = list(error.absolute_path)
        # a lowercase relation that is not registered: UNKNOWN_RELATION (semantic stage)
        if (
            len(path) == 4
            and path[:2] == ["graph", "edges"]
            and path[3] == "relation"
            and isinstance(error.instance, str)
            and re.fullmatch(r"[a-z][a-z_]{0,63}", error.instance)
        ):
            continue
        # scale present or missing for the dtype: TENSOR_DTYPE (semantic stage)
        if (
            len(path) == 2
            and path[0] == "tensors"
            and {"if", "then", "else"} & set(error.relative_schema_path)
        ):
            continue
        out.append(error)
    return out


def check_limits(raw: Any, limits: dict[str, int]) -> None:
    if not isinstance(raw, dict):
        return

    def check(name: str, value: int) -> None:
        if value > limits[name]:
            raise Refused("LIMIT_EXCEEDED", f"{name}: {value} > {limits[name]}")

    for key in ("concepts", "traces", "anchors", "tensors"):
        if isinstance(raw.get(key), list):
            check(f"max_{key}", len(raw[key]))
    graph = raw.get("graph")
    if isinstance(graph, dict) and isinstance(graph.get("edges"), list):
        check("max_edges", len(graph["edges"]))
    for trace in raw.get("traces") or []:
        if isinstance(trace, dict) and isinstance(trace.get("steps"), list):
            check("max_trace_steps", len(trace["steps"]))
    for t in raw.get("tensors") or []:
        if isinstance(t, dict) and isinstance(t.get("length"), int):
            check("max_tensor_bytes", t["length"])


def check_version(raw: Any) -> None:
    header = raw.get("header") if isinstance(raw, dict) else None
    if not isinstance(header, dict):
        return
    fmt, version = header.get("format"), header.get("version")
    if isinstance(fmt, str) and fmt != "m2kt":
        raise Refused("UNSUPPORTED_VERSION", f"format {fmt!r}")
    if isinstance(version, str) and version.split(".")[0] != "1":
        raise Refused("UNSUPPORTED_VERSION", f"version {version}")


def check_body(raw: Any, limits: dict[str, int], *, cbor: bool) -> dict[str, Any]:
    """Limits, version, schema, then the semantic rules (spec/packet-1.1.md §6)."""
    check_limits(raw, limits)
    check_version(raw)
    # a non-finite float anywhere is NONFINITE_VALUE, even where it also breaks a range
    if any(isinstance(v, float) and not math.isfinite(v) for v in _walk(raw)):
        raise Refused("NONFINITE_VALUE", "a float in the body is NaN or infinite")
    errors = _schema_errors(raw)
    if errors:
        e = jsonschema.exceptions.best_match(errors)
        raise Refused("SCHEMA_VIOLATION", f"{e.message} at /{'/'.join(map(str, e.path))}")
    for v in _walk(raw):
        if isinstance(v, (NotJson, Tagged, bytes)):
            raise Refused("SCHEMA_VIOLATION", f"{v!r} is outside the JSON data model")
        if isinstance(v, dict) and not all(isinstance(k, str) for k in v):
            raise Refused("SCHEMA_VIOLATION", "a map key is not a text string")
        if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**64:
            raise Refused("SCHEMA_VIOLATION", f"integer {v} outside the range of int")
    check_semantics(raw)
    for pattern in FLOAT_FIELDS:
        for path, value in list(_at(raw, pattern)):
            if isinstance(value, int) and not isinstance(value, bool):
                if cbor:
                    raise Refused("NON_CANONICAL", f"{'/'.join(map(str, path))} is an integer")
                _set(raw, path, float(value))  # the JSON form does not tell 1 from 1.0
    return raw


def _depth(value: Any) -> int:
    """Nesting of arrays and objects, the outermost counting 1 (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for k in path[:-1]:
        doc = doc[k]
    doc[path[-1]] = value


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def check_semantics(body: dict[str, Any]) -> None:
    # tensor descriptors: dtype/scale, length, packed layout
    end = 0
    for t in body["tensors"]:
        if (t["dtype"] == "i8") != ("scale" in t):
            raise Refused("TENSOR_DTYPE", f"{t['name']}: scale goes with i8 only")
        n = DTYPE_SIZE[t["dtype"]]
        for dim in t["shape"]:
            n *= dim
        if t["length"] != n:
            raise Refused("TENSOR_SHAPE", f"{t['name']}: length {t['length']}, shape needs {n}")
        if t["offset"] != _aligned(end):
            raise Refused("TENSOR_LAYOUT", f"{t['name']}: offset {t['offset']}")
        end = t["offset"] + t["length"]
    # unique ids
    for items, key in (
        (body["concepts"], "id"),
        (body["traces"], "id"),
        (body["anchors"], "id"),
        (body["tensors"], "name"),
    ):
        ids = [i[key] for i in items]
        if len(set(ids)) != len(ids):
            raise Refused("DUPLICATE_ID", f"an id appears twice among {ids}")
    shapes = {t["name"]: t["shape"] for t in body["tensors"]}
    concepts = {c["id"] for c in body["concepts"]}
    d = body["teacher"]["latent_dim"]

    def tensor(name: str, want: Callable[[list[int]], bool], what: str) -> None:
        if name not in shapes:
            raise Refused("DANGLING_REFERENCE", f"no tensor {name!r}")
        if not want(shapes[name]):
            raise Refused("DIMENSION_MISMATCH", f"{name}: shape {shapes[name]}, needs {what}")

    def concept(cid: str) -> None:
        if cid not in concepts:
            raise Refused("DANGLING_REFERENCE", f"no concept {cid!r}")

    for c in body["concepts"]:
        tensor(c["embedding"], lambda s: s == [d], f"[{d}]")
        if "manifold" in c:
            m = c["manifold"]
            tensor(m["directions"], lambda s: len(s) == 2 and s[1] == d, f"[k, {d}]")
            k = shapes[m["directions"]][0]
            tensor(m["variances"], lambda s, k=k: s == [k], f"[{k}]")
    for e in body["graph"]["edges"]:
        concept(e["source"])
        concept(e["target"])
        if e["relation"] not in RELATIONS and not e["relation"].startswith("x-"):
            raise Refused("UNKNOWN_RELATION", f"relation {e['relation']!r}")
    for t in body["traces"]:
        for s in t["steps"]:
            concept(s["concept"])
        if "states" in t:
            n = len(t["steps"])
            tensor(t["states"], lambda s, n=n: s == [n, d], f"[{n}, {d}]")
    for a in body["anchors"]:
        tensor(a["state"], lambda s: s == [d], f"[{d}]")
        if "concept" in a:
            concept(a["concept"])
    for cid in body["safety"].get("protected_concepts", []):
        concept(cid)
    # is_a must be acyclic: depth-first search with colours
    children: dict[str, list[str]] = {}
    for e in body["graph"]["edges"]:
        if e["relation"] == "is_a":
            children.setdefault(e["source"], []).append(e["target"])
    colour: dict[str, int] = {}
    for root in children:
        stack = [(root, iter(children.get(root, ())))]
        if colour.get(root):
            continue
        colour[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
            elif colour.get(nxt) == 1:
                raise Refused("ISA_CYCLE", f"is_a cycle through {nxt!r}")
            elif not colour.get(nxt):
                colour[nxt] = 1
                stack.append((nxt, iter(children.get(nxt, ()))))
    extensions = body.get("extensions") or {}
    for name, ext in extensions.items():
        if ext["critical"] and name not in REGISTERED:
            raise Refused("CRITICAL_EXTENSION", f"critical extension {name!r} not understood")
    # the registered extensions (§3.12): their schema first, then counts and references
    for name, schema_file in REGISTERED.items():
        if name not in extensions:
            continue
        data = extensions[name]["data"]
        errors = list(validator(schema_file).iter_errors(data))
        if errors:
            e = jsonschema.exceptions.best_match(errors)
            where = "/".join(map(str, e.path))
            raise Refused("SCHEMA_VIOLATION", f"extensions/{name}/data/{where}: {e.message}")
        if name == "derivation" and len(data["edges"]) != len(body["graph"]["edges"]):
            raise Refused(
                "SCHEMA_VIOLATION",
                f"{len(data['edges'])} edge derivations for {len(body['graph']['edges'])} edges",
            )
        if name == "operators":
            for entry in data["entries"]:
                for key in ("operator", "source", "target"):
                    concept(entry[key])


# =========================================================================== tensors


def check_tensor_data(body: dict[str, Any], data: bytes) -> None:
    tensors = body["tensors"]
    end = tensors[-1]["offset"] + tensors[-1]["length"] if tensors else 0
    if len(data) != _aligned(end):
        raise Refused("TENSOR_LAYOUT", f"data section of {len(data)} bytes, need {_aligned(end)}")
    cursor = 0
    for t in tensors:
        if any(data[cursor : t["offset"]]):
            raise Refused("TENSOR_LAYOUT", "non-zero padding")
        cursor = t["offset"] + t["length"]
    if any(data[cursor:]):
        raise Refused("TENSOR_LAYOUT", "non-zero padding at the end")
    for t in tensors:
        chunk = data[t["offset"] : t["offset"] + t["length"]]
        if hashlib.sha256(chunk).hexdigest() != t["sha256"]:
            raise Refused("TENSOR_DIGEST", f"{t['name']}: digest mismatch")
    for t in tensors:
        chunk = data[t["offset"] : t["offset"] + t["length"]]
        if t["dtype"] == "i8":
            if b"\x80" in chunk:
                raise Refused("TENSOR_DTYPE", f"{t['name']}: -128 is reserved")
        elif not all(math.isfinite(v) for v in widen(t["dtype"], chunk, None)):
            raise Refused("NONFINITE_VALUE", f"{t['name']} holds NaN or infinity")


def widen(dtype: str, chunk: bytes, scale: float | None) -> list[float]:
    """Elements as Python floats holding binary32 values (i8 dequantised in binary32)."""
    if dtype == "f32":
        return [v for (v,) in struct.iter_unpack("<f", chunk)]
    if dtype == "f16":
        return [v for (v,) in struct.iter_unpack("<e", chunk)]
    if dtype == "bf16":
        return [
            struct.unpack("<f", struct.pack("<I", bits << 16))[0]
            for (bits,) in struct.iter_unpack("<H", chunk)
        ]
    f32 = struct.unpack("<f", struct.pack("<f", scale))[0]  # the scale rounded to binary32
    return [
        struct.unpack("<f", struct.pack("<f", q * f32))[0]
        for (q,) in struct.iter_unpack("<b", chunk)
    ]


# =========================================================================== packets


class Packet:
    def __init__(self, body: dict[str, Any], body_bytes: bytes, data: bytes, sigs: bytes | None):
        self.body, self.body_bytes, self.data, self.signatures = body, body_bytes, data, sigs

    @property
    def packet_id(self) -> str:
        return hashlib.sha256(self.body_bytes).hexdigest()


def _pad_length(body_len: int, data_len: int) -> int:
    for n in range(128):
        start = 3 + 1 + 4 + len(_head(2, n)) + n + 5 + len(_head(2, body_len)) + body_len
        start += 5 + len(_head(2, data_len))
        if start % ALIGN == 0:
            return n
    raise AssertionError


class _Mismatch(Exception):
    pass


def _classify(buf: bytes, limits: dict[str, int]) -> Refused:
    """Why ``buf`` is not the envelope of §4.1, by decoding it as generic CBOR."""
    try:
        value = decode_item(buf, max_depth=limits["max_depth"], tags=True)
    except Refused as exc:
        if exc.code != "NON_CANONICAL":
            return exc
        value = None
    if isinstance(value, Tagged) and value.tag == 55799 and isinstance(value.value, dict):
        keys = set(value.value)
        if {"pad", "body", "data"} <= keys <= {"pad", "body", "data", "signatures"}:
            return Refused("NON_CANONICAL", "envelope entries out of order or not minimal")
    if value is None:
        return Refused("NON_CANONICAL", "not deterministically encoded")
    return Refused("NOT_A_PACKET", "not an m2kt envelope")


def split_envelope(buf: bytes, limits: dict[str, int]) -> tuple[bytes, bytes, bytes | None]:
    """(body bytes, data, signatures item) of the envelope 55799({pad, body, data, ?signatures})."""
    if len(buf) > limits["max_packet_bytes"]:
        raise Refused("LIMIT_EXCEEDED", "packet too large")
    d = Decoder(buf, max_depth=limits["max_depth"], tags=True)

    def literal(want: bytes) -> None:
        got = bytes(buf[d.pos : d.pos + len(want)])
        if got != want[: len(got)]:
            raise _Mismatch  # something else: classify it
        d._need(len(want))  # a prefix of what must come: truncated

    def bstr() -> int:
        major, _, n = d._head()
        if major != 2 or n is None:
            raise _Mismatch
        if d.noncanonical:
            raise Refused("NON_CANONICAL", "byte string length not minimal")
        return n

    try:
        literal(MAGIC)
        entries = d._need(1)[0]
        if entries not in (0xA3, 0xA4):
            raise _Mismatch
        literal(b"\x63pad")
        pad = d._need(bstr())
        literal(b"\x64body")
        n = bstr()
        if n > limits["max_body_bytes"]:
            raise Refused("LIMIT_EXCEEDED", "body too large")
        body = d._need(n)
        literal(b"\x64data")
        data = d._need(bstr())
        sigs = None
        if entries == 0xA4:
            literal(b"\x6asignatures")
            if len(buf) - d.pos > limits["max_signature_bytes"]:
                raise Refused("LIMIT_EXCEEDED", "signatures too large")
            sigs = bytes(buf[d.pos :])
            # a reader checks that the entry is one well-formed item; its content is the
            # verifier's business (spec/signing.md)
            decode_item(sigs, max_depth=limits["max_depth"], tags=True, canonical=False)
            d.pos = len(buf)
    except (_Mismatch, Refused) as exc:
        if isinstance(exc, Refused):
            raise
        raise _classify(bytes(buf), limits) from None
    if d.pos != len(buf):
        raise Refused("TRAILING_BYTES", "bytes after the packet")
    if len(pad) != _pad_length(len(body), len(data)) or any(pad):
        raise Refused("BAD_PADDING", "pad")
    return body, data, sigs


def decode_cbor(buf: bytes, limits: dict[str, int]) -> Packet:
    body_bytes, data, sigs = split_envelope(buf, limits)
    raw = decode_item(
        body_bytes, max_depth=limits["max_depth"], tags=False, max_items=limits["max_body_items"]
    )
    body = check_body(raw, limits, cbor=True)
    check_tensor_data(body, data)
    return Packet(body, body_bytes, data, sigs)


B64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise Refused("SCHEMA_VIOLATION", "expected a base64 string")
    if not B64.match(text):
        raise Refused("JSON_MALFORMED", "invalid base64")
    return base64.b64decode(text)


def _no_dups(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise Refused("DUPLICATE_KEY", "duplicate member")
    return out


def _no_constants(name: str) -> Any:
    raise Refused("JSON_MALFORMED", f"{name} is not JSON")


def _items(value: Any) -> int:
    """Data items as spec §8 counts them: a map of n entries is 1 + 2n, an array of n 1 + n."""
    if isinstance(value, dict):
        return 1 + sum(1 + _items(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_items(v) for v in value)
    return 1


def decode_json(text: bytes, limits: dict[str, int]) -> Packet:
    if len(text) > limits["max_packet_bytes"]:
        raise Refused("LIMIT_EXCEEDED", "packet too large")
    try:
        doc = json.loads(
            text.decode("utf-8"), object_pairs_hook=_no_dups, parse_constant=_no_constants
        )
    except (ValueError, RecursionError):
        raise Refused("JSON_MALFORMED", "not JSON") from None
    # item limits (spec §4.5), counted here after parsing: this implementation checks outcomes,
    # it does not defend its memory
    body_items = _items(doc["body"]) if isinstance(doc, dict) and "body" in doc else 0
    if body_items > limits["max_body_items"]:
        raise Refused("LIMIT_EXCEEDED", f"body holds {body_items} items")
    if _items(doc) - body_items > 2 * limits["max_tensors"] + 8:
        raise Refused("LIMIT_EXCEEDED", "too many items beside the body")
    for v in _walk(doc):  # json.loads lets "\ud800" through; JSON text is Unicode
        if isinstance(v, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in v):
            raise Refused("JSON_MALFORMED", "a string holds a lone surrogate")
    if not isinstance(doc, dict) or doc.get("m2kt_json") is None or "body" not in doc:
        raise Refused("NOT_A_PACKET", "not the JSON form")
    version = doc["m2kt_json"]
    if not isinstance(version, str) or not re.fullmatch(
        r"(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})", version
    ):
        raise Refused("SCHEMA_VIOLATION", "m2kt_json is not MAJOR.MINOR")
    if version.split(".")[0] != "1":
        raise Refused("UNSUPPORTED_VERSION", f"JSON form {version}")
    if set(doc) - {"m2kt_json", "body", "tensor_data", "signatures"}:
        raise Refused("SCHEMA_VIOLATION", "unknown member")
    if _depth(doc["body"]) > limits["max_depth"]:
        raise Refused("LIMIT_EXCEEDED", f"body nested deeper than {limits['max_depth']}")
    body = check_body(doc["body"], limits, cbor=False)
    tensor_data = doc.get("tensor_data")
    if not isinstance(tensor_data, dict):
        raise Refused("SCHEMA_VIOLATION", "tensor_data")
    names = [t["name"] for t in body["tensors"]]
    if set(tensor_data) - set(names):
        raise Refused("DANGLING_REFERENCE", "tensor_data for an unknown tensor")
    end = body["tensors"][-1]["offset"] + body["tensors"][-1]["length"] if names else 0
    data = bytearray(_aligned(end))
    for t in body["tensors"]:
        if t["name"] not in tensor_data:
            raise Refused("DANGLING_REFERENCE", f"no tensor_data for {t['name']!r}")
        raw = _b64(tensor_data[t["name"]])
        if len(raw) != t["length"]:
            raise Refused("TENSOR_SHAPE", f"{t['name']}: {len(raw)} bytes")
        data[t["offset"] : t["offset"] + t["length"]] = raw
    sigs = None
    if "signatures" in doc:
        sigs = _b64(doc["signatures"])
        if len(sigs) > limits["max_signature_bytes"]:
            raise Refused("LIMIT_EXCEEDED", "signatures too large")
        decode_item(sigs, max_depth=limits["max_depth"], tags=True, canonical=False)
    check_tensor_data(body, bytes(data))
    return Packet(body, canonical(body), bytes(data), sigs)


# =========================================================================== protocol


def _limits(overrides: Any) -> dict[str, int]:
    limits = dict(DEFAULT_LIMITS)
    for name, value in (overrides or {}).items():
        if name not in limits or not isinstance(value, int) or value < 0:
            raise Refused("USAGE", f"bad limit {name}")
        limits[name] = value
    return limits


def read_input(inp: dict[str, Any]) -> bytes:
    if "path" in inp:
        try:
            with open(inp["path"], "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise Refused("IO_ERROR", f"cannot read {inp['path']}: {exc.strerror}") from None
    return base64.b64decode(inp["b64"])


def decode_input(inp: dict[str, Any]) -> Packet:
    limits = _limits(inp.get("limits"))
    buf = read_input(inp)
    if inp.get("encoding") == "json":
        return decode_json(buf, limits)
    return decode_cbor(buf, limits)


def summary(p: Packet, values: bool) -> dict[str, Any]:
    b = p.body
    out = {
        "format": b["header"]["format"],
        "version": b["header"]["version"],
        "teacher": b["teacher"]["name"],
        "latent_dim": b["teacher"]["latent_dim"],
        "counts": {
            "concepts": len(b["concepts"]),
            "edges": len(b["graph"]["edges"]),
            "traces": len(b["traces"]),
            "anchors": len(b["anchors"]),
            "tensors": len(b["tensors"]),
        },
        "extensions": sorted(b.get("extensions", {})),
        "signed": p.signatures is not None,
        "tensors": [
            {"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]} for t in b["tensors"]
        ],
    }
    if values:
        out["tensor_values"] = {
            t["name"]: widen(
                t["dtype"], p.data[t["offset"] : t["offset"] + t["length"]], t.get("scale")
            )
            for t in b["tensors"]
        }
    return out


def op_decode(inp: dict[str, Any]) -> dict[str, Any]:
    p = decode_input(inp)
    return {
        "outcome": "valid",
        "packet_id": p.packet_id,
        "summary": summary(p, bool(inp.get("values"))),
    }


def op_verify(inp: dict[str, Any]) -> dict[str, Any]:
    import m2kt_indep_verify  # the COSE part, kept apart

    policy = m2kt_indep_verify.load_policy(inp)  # before the packet is read
    p = decode_input(inp)
    signers = m2kt_indep_verify.verify(p, policy, _limits(inp.get("limits")))
    return {**op_decode_result(p, inp), "signers": signers}


def op_decode_result(p: Packet, inp: dict[str, Any]) -> dict[str, Any]:
    return {
        "outcome": "valid",
        "packet_id": p.packet_id,
        "summary": summary(p, bool(inp.get("values"))),
    }


OPERATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"decode": op_decode}
if (Path(__file__).parent / "m2kt_indep_verify.py").exists():
    OPERATIONS["verify"] = op_verify


def handle(op: str, inp: dict[str, Any]) -> dict[str, Any]:
    try:
        return OPERATIONS[op](inp)
    except Refused as exc:
        return {"outcome": "invalid", "code": exc.code, "message": str(exc)}
    except binascii.Error as exc:
        return {"outcome": "invalid", "code": "USAGE", "message": str(exc)}


def serve() -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if msg["cmd"] == "start":
            profiles = ["reader", "verifier"] if "verify" in OPERATIONS else ["reader"]
            reply: dict[str, Any] = {
                "protocol": 1,
                "implementation": {
                    "name": NAME,
                    "version": VERSION,
                    "language": "python (no m2kt_ref)",
                    "profiles": profiles,
                },
            }
        elif msg["cmd"] == "run":
            if msg["op"] not in OPERATIONS:
                reply = {"seq": msg["seq"], "skipped": {"reason": f"{msg['op']} not implemented"}}
            else:
                try:
                    reply = {"seq": msg["seq"], "result": handle(msg["op"], msg["input"])}
                except Exception as exc:
                    reply = {
                        "seq": msg["seq"],
                        "errored": {"message": repr(exc), "traceback": traceback.format_exc()},
                    }
        else:
            return 0
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.modules.setdefault("m2kt_indep", sys.modules[__name__])  # one module, one Refused class
    sys.exit(serve())
