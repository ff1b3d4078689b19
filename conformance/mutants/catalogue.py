"""The single-rule mutants: each breaks exactly one requirement of the specification.

Most change the independent implementation (``conformance/independent/``): it is short and was
written from the spec alone, so each rule sits in one or two lines. A few change the reference
library where the rule lives only there (the trust-store file reader, the signatures entry's
tags). Every mutant names the rule it breaks as ``FILE §N: what the rule says``;
:mod:`requirements` maps every MUST of the spec onto the mutants that break it.

The suite must kill every mutant here (``conformance/mutate``); a mutant that no vector kills
names a rule without a vector, and the tests fail until a vector is added.
"""

from __future__ import annotations

from engine import Mutant

INDEP = "conformance/independent/m2kt_indep.py"
VERIFY = "conformance/independent/m2kt_indep_verify.py"


#: The seven small-order encodings (signing.md §3.1), for the mutant that checks only those.
SMALL_ORDER_HEX = (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)
#: The cofactored equation [8][S]B = [8]R + [8][k]A of RFC 8032 §5.1.7, in place of libsodium's
#: cofactorless check (what many Ed25519 libraries do by default).
COFACTORED = """        b = nacl.bindings
        if (sig[:31] + bytes([sig[31] & 0x7F])).hex() in SMALL_ORDER_HEX:
            raise nacl.exceptions.BadSignatureError  # R of small order is still refused
        k = int.from_bytes(hashlib.sha512(sig[:32] + x + message).digest(), "little") % L
        d = b.crypto_core_ed25519_sub(
            b.crypto_core_ed25519_sub(
                b.crypto_scalarmult_ed25519_base_noclamp(sig[32:]),
                b.crypto_scalarmult_ed25519_noclamp(k.to_bytes(32, "little"), x),
            ),
            sig[:32],
        )
        for _ in range(3):
            d = b.crypto_core_ed25519_add(d, d)
        if d != bytes([1]) + bytes(31):
            raise nacl.exceptions.BadSignatureError"""


def _m(mid: str, rule: str, target: str, find: str, replace: str, *more: tuple[str, str]) -> Mutant:
    if "SMALL_ORDER_HEX" in replace:
        replace = replace.replace("SMALL_ORDER_HEX", repr(SMALL_ORDER_HEX))
    return Mutant(mid, rule, target, find, replace, tuple(more))


# --------------------------------------------------------------------------- envelope (§4.1)
ENVELOPE = [
    _m(
        "envelope-pad-length",
        "packet-1.1.md §4.1: the pad is the smallest that aligns the data section (BAD_PADDING)",
        INDEP,
        "if len(pad) != _pad_length(len(body), len(data)) or any(pad):",
        "if any(pad):",
    ),
    _m(
        "envelope-pad-zeros",
        "packet-1.1.md §4.1: the pad holds zero bytes only (BAD_PADDING)",
        INDEP,
        "if len(pad) != _pad_length(len(body), len(data)) or any(pad):",
        "if len(pad) != _pad_length(len(body), len(data)):",
    ),
    _m(
        "envelope-trailing-bytes",
        "packet-1.1.md §4.1: no bytes after the last entry (TRAILING_BYTES)",
        INDEP,
        "    if d.pos != len(buf):\n"
        '        raise Refused("TRAILING_BYTES", "bytes after the packet")',
        "    pass",
    ),
    _m(
        "envelope-bstr-minimal",
        "packet-1.1.md §4.1: byte-string headers use the shortest form (NON_CANONICAL)",
        INDEP,
        "        if d.noncanonical:\n"
        '            raise Refused("NON_CANONICAL", "byte string length not minimal")',
        "        d.noncanonical = None",
    ),
    _m(
        "envelope-tag",
        "packet-1.1.md §4.1: the file starts with tag 55799 (NOT_A_PACKET)",
        INDEP,
        "        literal(MAGIC)\n",
        "        d._need(3)\n",
    ),
    _m(
        "limit-packet-bytes",
        "packet-1.1.md §8: max_packet_bytes is checked before parsing (LIMIT_EXCEEDED)",
        INDEP,
        '    if len(buf) > limits["max_packet_bytes"]:\n        raise Refused("LIMIT_EXCEEDED", '
        '"packet too large")\n    d = Decoder',
        "    d = Decoder",
    ),
    _m(
        "limit-body-bytes",
        "packet-1.1.md §8: max_body_bytes is checked from the header (LIMIT_EXCEEDED)",
        INDEP,
        'if n > limits["max_body_bytes"]:',
        "if False:",
    ),
    _m(
        "limit-signature-bytes",
        "packet-1.1.md §8: max_signature_bytes bounds the signatures entry (LIMIT_EXCEEDED)",
        INDEP,
        'if len(buf) - d.pos > limits["max_signature_bytes"]:',
        "if False:",
    ),
    _m(
        "signatures-entry-wellformed",
        "packet-1.1.md §4.1: the signatures entry is one well-formed CBOR item",
        INDEP,
        '            decode_item(sigs, max_depth=limits["max_depth"], tags=True, canonical=False)\n'
        "            d.pos = len(buf)",
        "            d.pos = len(buf)",
    ),
    _m(
        "signatures-entry-depth",
        "packet-1.1.md §8: the signatures item's nesting is bounded by max_depth (LIMIT_EXCEEDED)",
        INDEP,
        '            decode_item(sigs, max_depth=limits["max_depth"], tags=True, canonical=False)\n'
        "            d.pos = len(buf)",
        "            decode_item(sigs, max_depth=1 << 20, tags=True, canonical=False)\n"
        "            d.pos = len(buf)",
    ),
    _m(
        "signatures-entry-tags-not-levels",
        "packet-1.1.md §8: tags in the signatures item count as nesting levels",
        INDEP,
        "            if depth >= self.max_depth:  # a tag is a level too (spec §8)\n"
        '                raise Refused("LIMIT_EXCEEDED", f"nesting deeper than {self.max_depth}")\n'
        "            return Tagged(arg, self.item(depth + 1))",
        "            return Tagged(arg, self.item(depth))",
    ),
    _m(
        "signatures-entry-tag-interpreted",
        "packet-1.1.md §4.1: readers do not interpret tags in the signatures entry",
        INDEP,
        "            return Tagged(arg, self.item(depth + 1))",
        "            inner = self.item(depth + 1)\n"
        "            if arg == 1 and not isinstance(inner, (int, float)):\n"
        '                raise Refused("CBOR_MALFORMED", "tag 1 holds no epoch time")\n'
        "            return Tagged(arg, inner)",
    ),
]

# --------------------------------------------------------------------------- CBOR (§4.2)
CBOR = [
    _m(
        "cbor-indefinite-code",
        "packet-1.1.md §4.2: definite lengths only (INDEFINITE_LENGTH)",
        INDEP,
        'raise Refused("INDEFINITE_LENGTH", "indefinite-length item")',
        'raise Refused("CBOR_MALFORMED", "indefinite-length item")',
    ),
    _m(
        "cbor-reserved-info",
        "packet-1.1.md §4.1: ill-formed CBOR (reserved additional information) is CBOR_MALFORMED",
        INDEP,
        '        raise Refused("CBOR_MALFORMED", f"reserved additional information {info}")',
        "        return major, info, 0",
    ),
    _m(
        "cbor-simple-below-32",
        "packet-1.1.md §4.1: a two-byte simple value below 32 is not well-formed (CBOR_MALFORMED)",
        INDEP,
        "            if arg < 32:",
        "            if arg < 0:",
    ),
    _m(
        "cbor-utf8",
        "packet-1.1.md §4.2: text strings are valid UTF-8 (CBOR_MALFORMED)",
        INDEP,
        'return self._need(arg).decode("utf-8")',
        'return self._need(arg).decode("utf-8", "replace")',
    ),
    _m(
        "cbor-duplicate-keys",
        "packet-1.1.md §4.2: no key appears twice in a map (DUPLICATE_KEY)",
        INDEP,
        "                if marker in seen:",
        "                if False:",
    ),
    _m(
        "cbor-duplicate-keys-text-only",
        "packet-1.1.md §4.2: duplicate keys of any type are refused, not only text keys",
        INDEP,
        "                if marker in seen:",
        "                if marker in seen and isinstance(key, str):",
    ),
    _m(
        "cbor-duplicate-keys-scalars-only",
        "packet-1.1.md §4.2: duplicate keys that are floats, arrays or maps are refused too",
        INDEP,
        "                if marker in seen:",
        "                if marker in seen and isinstance(key, (str, int, bytes)):",
    ),
    _m(
        "cbor-duplicate-keys-by-value",
        "packet-1.1.md §4.2: keys are compared as CBOR items (1, 1.0 and true are distinct keys)",
        INDEP,
        "                marker = _key_marker(key, bytes(encoded))",
        "                marker = key if isinstance(key, (int, float, str, bytes)) else "
        "_key_marker(key, bytes(encoded))",
    ),
    _m(
        "cbor-key-order",
        "packet-1.1.md §4.2: map keys sorted bytewise (NON_CANONICAL)",
        INDEP,
        '                    self._note("map keys not in bytewise order")',
        "                    pass",
    ),
    _m(
        "cbor-int-minimal-negative",
        "packet-1.1.md §4.2: negative integers in their shortest form (NON_CANONICAL)",
        INDEP,
        "if major != 7 and arg < (24 if width == 1 else 1 << (4 * width)):",
        "if major not in (1, 7) and arg < (24 if width == 1 else 1 << (4 * width)):",
    ),
    _m(
        "cbor-int-minimal-eight",
        "packet-1.1.md §4.2: integers in their shortest form, eight-byte heads included",
        INDEP,
        "if major != 7 and arg < (24 if width == 1 else 1 << (4 * width)):",
        "if major != 7 and width < 8 and arg < (24 if width == 1 else 1 << (4 * width)):",
    ),
    _m(
        "cbor-length-minimal",
        "packet-1.1.md §4.2: lengths in their shortest form (NON_CANONICAL)",
        INDEP,
        "if major != 7 and arg < (24 if width == 1 else 1 << (4 * width)):",
        "if major in (0, 1) and arg < (24 if width == 1 else 1 << (4 * width)):",
    ),
    _m(
        "cbor-float-shortest",
        "packet-1.1.md §4.2: floats in the shortest of binary16/32/64 that holds them exactly",
        INDEP,
        "        if bytes([0xE0 | info]) + raw != shortest_float(value):",
        "        if info == 27 and bytes([0xE0 | info]) + raw != shortest_float(value):",
    ),
    _m(
        "cbor-float-shortest-64",
        "packet-1.1.md §4.2: a binary64 that binary32 holds exactly is written as binary32",
        INDEP,
        "        if bytes([0xE0 | info]) + raw != shortest_float(value):",
        "        if info == 26 and bytes([0xE0 | info]) + raw != shortest_float(value):",
    ),
    _m(
        "cbor-nan-payload",
        "packet-1.1.md §4.2: a NaN is written f9 7e 00 only, whatever its payload",
        INDEP,
        "        if bytes([0xE0 | info]) + raw != shortest_float(value):",
        "        if not (info == 25 and math.isnan(value)) and "
        "bytes([0xE0 | info]) + raw != shortest_float(value):",
    ),
    _m(
        "body-tags",
        "packet-1.1.md §4.2: the body holds no tags (NON_CANONICAL)",
        INDEP,
        '            if not self.tags:\n                raise Refused("NON_CANONICAL", '
        'f"tag {arg} in the body")',
        "            pass",
    ),
    _m(
        "body-depth",
        "packet-1.1.md §8: the body's nesting is at most max_depth (LIMIT_EXCEEDED)",
        INDEP,
        "            if arg and depth + 1 > self.max_depth:",
        "            if arg and depth > self.max_depth:",
    ),
    _m(
        "body-depth-empty-container",
        "packet-1.1.md §8: an empty array or map at the limit holds no item and is accepted",
        INDEP,
        "            if arg and depth + 1 > self.max_depth:",
        "            if depth + 1 > self.max_depth:",
    ),
    _m(
        "body-trailing-bytes",
        "packet-1.1.md §4.2: the body is one item filling its byte string (TRAILING_BYTES)",
        INDEP,
        "    raw = decode_item(\n"
        '        body_bytes, max_depth=limits["max_depth"], tags=False, '
        'max_items=limits["max_body_items"]\n'
        "    )",
        "    _d = Decoder(\n"
        '        body_bytes, max_depth=limits["max_depth"], tags=False, '
        'max_items=limits["max_body_items"]\n'
        "    )\n"
        "    raw = _d.item()\n"
        "    if _d.noncanonical:\n"
        '        raise Refused("NON_CANONICAL", _d.noncanonical)',
    ),
    _m(
        "body-reencode-number-field",
        "packet-1.1.md §4.2: a field of type number holds a CBOR float (NON_CANONICAL)",
        INDEP,
        "                if cbor:\n                    raise Refused(",
        "                if False:\n                    raise Refused(",
    ),
]

# --------------------------------------------------------------------------- limits, version
LIMITS = [
    _m(
        "limit-concepts",
        "packet-1.1.md §8: max_concepts (LIMIT_EXCEEDED)",
        INDEP,
        'for key in ("concepts", "traces", "anchors", "tensors"):',
        'for key in ("traces", "anchors", "tensors"):',
    ),
    _m(
        "limit-edges",
        "packet-1.1.md §8: max_edges (LIMIT_EXCEEDED)",
        INDEP,
        '        check("max_edges", len(graph["edges"]))',
        "        pass",
    ),
    _m(
        "limit-trace-steps",
        "packet-1.1.md §8: max_trace_steps (LIMIT_EXCEEDED)",
        INDEP,
        '            check("max_trace_steps", len(trace["steps"]))',
        "            pass",
    ),
    _m(
        "limit-tensor-bytes",
        "packet-1.1.md §8: max_tensor_bytes, from the descriptor, before any data (LIMIT_EXCEEDED)",
        INDEP,
        '            check("max_tensor_bytes", t["length"])',
        "            pass",
    ),
    _m(
        "limit-body-items",
        "packet-1.1.md §8: max_body_items bounds the body's data items (LIMIT_EXCEEDED)",
        INDEP,
        "        if self.max_items is not None and self.items > self.max_items:",
        "        if False:",
    ),
    _m(
        "limit-body-items-keys",
        "packet-1.1.md §8: map keys are items too (a map of n entries is 1 + 2n items)",
        INDEP,
        "                key = self.item(depth + 1)\n",
        "                key = self.item(depth + 1)\n                self.items -= 1\n",
    ),
    _m(
        "limit-body-items-at-bound",
        "packet-1.1.md §8: a body of exactly max_body_items items is accepted",
        INDEP,
        "        if self.max_items is not None and self.items > self.max_items:",
        "        if self.max_items is not None and self.items >= self.max_items:",
    ),
    _m(
        "limit-at-bound",
        "packet-1.1.md §8: a packet at the limits is accepted (limits are inclusive)",
        INDEP,
        "        if value > limits[name]:",
        "        if value >= limits[name]:",
    ),
    _m(
        "version-major",
        "packet-1.1.md §9: any major version other than 1 is UNSUPPORTED_VERSION",
        INDEP,
        '    if isinstance(version, str) and version.split(".")[0] != "1":',
        '    if isinstance(version, str) and version.split(".")[0] not in ("1", "2"):',
    ),
    _m(
        "version-minor",
        "packet-1.1.md §9: a 1.x reader accepts a packet of any version 1.MINOR",
        INDEP,
        '    if isinstance(version, str) and version.split(".")[0] != "1":',
        '    if isinstance(version, str) and version not in ("1.0", "1.1"):',
    ),
    _m(
        "order-version-after-schema",
        "packet-1.1.md §10: the version is checked (step 3) before the schema (step 4)",
        INDEP,
        "    check_limits(raw, limits)\n    check_version(raw)\n",
        "    check_limits(raw, limits)\n",
        ("    check_semantics(raw)\n", "    check_version(raw)\n    check_semantics(raw)\n"),
    ),
    _m(
        "version-format-text",
        "packet-1.1.md §3.2: a format that is not text is SCHEMA_VIOLATION (not "
        "UNSUPPORTED_VERSION)",
        INDEP,
        '    if isinstance(fmt, str) and fmt != "m2kt":',
        '    if fmt != "m2kt":',
    ),
]

# --------------------------------------------------------------------------- schema (§3, §4.2)
SCHEMA = [
    _m(
        "schema-nonfinite-code",
        "packet-1.1.md §3.1: a non-finite number is NONFINITE_VALUE",
        INDEP,
        "    if any(isinstance(v, float) and not math.isfinite(v) for v in _walk(raw)):",
        "    if False:",
    ),
    _m(
        "schema-int-range",
        "packet-1.1.md §3.1: integers lie within -2^63 .. 2^64-1, free-form values included",
        INDEP,
        "not -(2**63) <= v < 2**64:",
        "not -(2**64) <= v < 2**64:",
    ),
    _m(
        "schema-text-keys",
        "packet-1.1.md §4.2: map keys are text strings everywhere in the body",
        INDEP,
        "        if isinstance(v, dict) and not all(isinstance(k, str) for k in v):",
        "        if False:",
    ),
    _m(
        "schema-json-data-model",
        "packet-1.1.md §4.2: no byte strings in the body, free-form values included",
        INDEP,
        "        if isinstance(v, (NotJson, Tagged, bytes)):",
        "        if isinstance(v, (NotJson, Tagged)):",
    ),
    _m(
        "schema-strict-integer",
        "packet-1.1.md §4.2: a field of type integer holds a CBOR integer, not an integral float",
        INDEP,
        '        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)',
        '        "integer", lambda _, v: not isinstance(v, bool) and isinstance(v, (int, float)) '
        "and float(v).is_integer()",
    ),
    _m(
        "schema-pattern-end",
        "packet-1.1.md §1: patterns are ECMA-262: $ does not match before a final line feed",
        INDEP,
        '            out[k] = v[:-1] + "\\\\Z"',
        "            out[k] = v",
    ),
]

# --------------------------------------------------------------------------- semantics (§6)
SEMANTICS = [
    _m(
        "descriptor-scale",
        "packet-1.1.md §3.10: scale is present if and only if dtype is i8 (TENSOR_DTYPE)",
        INDEP,
        '        if (t["dtype"] == "i8") != ("scale" in t):',
        '        if t["dtype"] == "i8" and "scale" not in t:',
    ),
    _m(
        "descriptor-length-overflow",
        "packet-1.1.md §8: size arithmetic is checked for overflow (no 64-bit wrap-around)",
        INDEP,
        "            n *= dim",
        "            n = (n * dim) % (1 << 64)",
    ),
    _m(
        "descriptor-length",
        "packet-1.1.md §3.10: length = element size x product of shape (TENSOR_SHAPE)",
        INDEP,
        '        if t["length"] != n:',
        '        if t["length"] < n:',
    ),
    _m(
        "descriptor-offsets",
        "packet-1.1.md §4.3: offsets are packed in descriptor order (TENSOR_LAYOUT)",
        INDEP,
        '        if t["offset"] != _aligned(end):',
        '        if t["offset"] % ALIGN or t["offset"] < end:',
    ),
    _m(
        "unique-anchor-ids",
        "packet-1.1.md §6: anchor ids are unique (DUPLICATE_ID)",
        INDEP,
        '        (body["anchors"], "id"),\n',
        "",
    ),
    _m(
        "dangling-step",
        "packet-1.1.md §6: every trace step names a concept (DANGLING_REFERENCE)",
        INDEP,
        '        for s in t["steps"]:\n            concept(s["concept"])',
        "        pass",
    ),
    _m(
        "dangling-protected",
        "packet-1.1.md §6: safety.protected_concepts name concepts (DANGLING_REFERENCE)",
        INDEP,
        '    for cid in body["safety"].get("protected_concepts", []):\n        concept(cid)',
        "    pass",
    ),
    _m(
        "dimension-variances",
        "packet-1.1.md §3.4: manifold variances have shape [k] (DIMENSION_MISMATCH)",
        INDEP,
        'tensor(m["variances"], lambda s, k=k: s == [k], f"[{k}]")',
        'tensor(m["variances"], lambda s, k=k: len(s) == 1, f"[{k}]")',
    ),
    _m(
        "unknown-relation",
        "packet-1.1.md §3.5: a relation is registered or starts with x- (UNKNOWN_RELATION)",
        INDEP,
        'not e["relation"].startswith("x-"):',
        'not e["relation"].startswith("x"):',
    ),
    _m(
        "isa-cycle",
        "packet-1.1.md §6: the is_a edges form a DAG (ISA_CYCLE)",
        INDEP,
        '                raise Refused("ISA_CYCLE", f"is_a cycle through {nxt!r}")',
        "                pass",
    ),
    _m(
        "extension-noncritical-dropped",
        "packet-1.1.md §9: an extension a reader does not understand is ignored and preserved",
        INDEP,
        '    extensions = body.get("extensions") or {}\n',
        '    for gone in [n for n, e in (body.get("extensions") or {}).items() '
        'if not e["critical"] and n not in REGISTERED]:\n'
        '        del body["extensions"][gone]\n'
        '    extensions = body.get("extensions") or {}\n',
    ),
    _m(
        "relation-private-dropped",
        "packet-1.1.md §3.5: readers keep private x- relations (they are part of the body)",
        INDEP,
        '    for e in body["graph"]["edges"]:\n        concept(e["source"])',
        '    body["graph"]["edges"] = [e for e in body["graph"]["edges"] '
        'if not e["relation"].startswith("x-")]\n'
        '    for e in body["graph"]["edges"]:\n        concept(e["source"])',
    ),
    _m(
        "critical-extension",
        "packet-1.1.md §9: an unknown critical extension is refused (CRITICAL_EXTENSION)",
        INDEP,
        '        if ext["critical"] and name not in REGISTERED:',
        "        if False:",
    ),
    _m(
        "derivation-edge-count",
        "packet-1.1.md §3.12: derivation.edges has exactly one item per edge (SCHEMA_VIOLATION)",
        INDEP,
        'len(data["edges"]) != len(body["graph"]["edges"]):',
        'len(data["edges"]) < len(body["graph"]["edges"]):',
    ),
    _m(
        "operators-dangling-target",
        "packet-1.1.md §3.12: every concept id of an operators entry resolves",
        INDEP,
        '                for key in ("operator", "source", "target"):',
        '                for key in ("operator", "source"):',
    ),
]

# --------------------------------------------------------------------------- tensor data (§5)
TENSOR_DATA = [
    _m(
        "data-unchecked",
        "packet-1.1.md §10: step 7 is not skipped on input that was not verified before",
        INDEP,
        "    check_tensor_data(body, data)\n    return Packet(body, body_bytes, data, sigs)",
        "    return Packet(body, body_bytes, data, sigs)",
    ),
    _m(
        "data-length",
        "packet-1.1.md §4.3: the data section has exactly the aligned length (TENSOR_LAYOUT)",
        INDEP,
        "    if len(data) != _aligned(end):",
        "    if len(data) < _aligned(end):",
    ),
    _m(
        "data-padding-between",
        "packet-1.1.md §4.3: bytes between tensors are zero (TENSOR_LAYOUT)",
        INDEP,
        '        if any(data[cursor : t["offset"]]):',
        "        if False:",
    ),
    _m(
        "data-padding-end",
        "packet-1.1.md §4.3: bytes after the last tensor are zero (TENSOR_LAYOUT)",
        INDEP,
        "    if any(data[cursor:]):",
        "    if False:",
    ),
    *[
        _m(
            f"digest-{dtype}",
            f"signing.md §2: every tensor's SHA-256 is checked, {dtype} tensors too "
            "(TENSOR_DIGEST)",
            INDEP,
            '        if hashlib.sha256(chunk).hexdigest() != t["sha256"]:',
            f'        if t["dtype"] != "{dtype}" and hashlib.sha256(chunk).hexdigest() != '
            't["sha256"]:',
        )
        for dtype in ("f32", "f16", "bf16", "i8")
    ],
    _m(
        "nonfinite-f16-nan",
        "packet-1.1.md §5.1: no f16 element is NaN (NONFINITE_VALUE)",
        INDEP,
        '        elif not all(math.isfinite(v) for v in widen(t["dtype"], chunk, None)):',
        '        elif not all(math.isfinite(v) or (t["dtype"] == "f16" and math.isnan(v)) '
        'for v in widen(t["dtype"], chunk, None)):',
    ),
    _m(
        "nonfinite-f32-inf",
        "packet-1.1.md §5.1: no f32 element is infinite (NONFINITE_VALUE)",
        INDEP,
        '        elif not all(math.isfinite(v) for v in widen(t["dtype"], chunk, None)):',
        '        elif not all(math.isfinite(v) or (t["dtype"] == "f32" and math.isinf(v)) '
        'for v in widen(t["dtype"], chunk, None)):',
    ),
    _m(
        "i8-minus-128",
        "packet-1.1.md §5.1: the i8 value -128 is reserved (TENSOR_DTYPE)",
        INDEP,
        '            if b"\\x80" in chunk:',
        "            if False:",
    ),
]

# --------------------------------------------------------------------------- JSON form (§4.5)
JSON_FORM = [
    _m(
        "json-duplicate-member",
        "packet-1.1.md §4.5: duplicate member names are DUPLICATE_KEY",
        INDEP,
        "    if len(out) != len(pairs):",
        "    if False:",
    ),
    _m(
        "json-nan",
        "packet-1.1.md §4.5: NaN and Infinity are JSON_MALFORMED",
        INDEP,
        "object_pairs_hook=_no_dups, parse_constant=_no_constants",
        "object_pairs_hook=_no_dups",
    ),
    _m(
        "json-lone-surrogate",
        "packet-1.1.md §4.5: a \\u escape that leaves a lone surrogate is JSON_MALFORMED",
        INDEP,
        '            raise Refused("JSON_MALFORMED", "a string holds a lone surrogate")',
        "            pass",
    ),
    _m(
        "json-base64-padding",
        "packet-1.1.md §4.5: tensor_data is base64 with padding (JSON_MALFORMED)",
        INDEP,
        "    if not B64.match(text):\n"
        '        raise Refused("JSON_MALFORMED", "invalid base64")\n'
        "    return base64.b64decode(text)",
        '    if not B64.match(text + "=" * (-len(text) % 4)):\n'
        '        raise Refused("JSON_MALFORMED", "invalid base64")\n'
        '    return base64.b64decode(text + "=" * (-len(text) % 4))',
    ),
    _m(
        "json-base64-alphabet",
        "packet-1.1.md §4.5: tensor_data uses the standard base64 alphabet (JSON_MALFORMED)",
        INDEP,
        "    if not B64.match(text):\n"
        '        raise Refused("JSON_MALFORMED", "invalid base64")\n'
        "    return base64.b64decode(text)",
        '    text = text.replace("-", "+").replace("_", "/")\n'
        "    if not B64.match(text):\n"
        '        raise Refused("JSON_MALFORMED", "invalid base64")\n'
        "    return base64.b64decode(text)",
    ),
    _m(
        "json-base64-strict",
        "packet-1.1.md §4.5: tensor_data holds base64 and no other characters (JSON_MALFORMED)",
        INDEP,
        "    if not B64.match(text):\n"
        '        raise Refused("JSON_MALFORMED", "invalid base64")\n'
        "    return base64.b64decode(text)",
        "    return base64.b64decode(text)",
    ),
    _m(
        "json-integer-spelling",
        "packet-1.1.md §4.5: a field of type integer is written without fraction or exponent",
        INDEP,
        "object_pairs_hook=_no_dups, parse_constant=_no_constants",
        "object_pairs_hook=_no_dups, parse_constant=_no_constants, "
        "parse_float=lambda s: int(float(s)) if float(s).is_integer() else float(s)",
    ),
    _m(
        "json-tensor-data-name",
        "packet-1.1.md §4.5: a tensor_data member for no tensor is DANGLING_REFERENCE, "
        "whatever its name",
        INDEP,
        "    if set(tensor_data) - set(names):",
        '    if any(not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:/+*=<>-]{0,255}", n) '
        "for n in tensor_data):\n"
        '        raise Refused("SCHEMA_VIOLATION", "tensor_data member name")\n'
        "    if set(tensor_data) - set(names):",
    ),
    _m(
        "json-member-order",
        "packet-1.1.md §4.5: readers accept any member order and white space",
        INDEP,
        "    for v in _walk(doc):  # json.loads lets",
        '    if json.dumps(doc, sort_keys=True, separators=(",", ":"), '
        "ensure_ascii=False).encode() != text:\n"
        '        raise Refused("JSON_MALFORMED", "members not sorted, or white space")\n'
        "    for v in _walk(doc):  # json.loads lets",
    ),
    _m(
        "json-depth",
        "packet-1.1.md §4.5: the JSON form's body obeys max_depth (LIMIT_EXCEEDED)",
        INDEP,
        '    if _depth(doc["body"]) > limits["max_depth"]:',
        "    if False:",
    ),
    _m(
        "json-body-items",
        "packet-1.1.md §4.5: the JSON form's body obeys max_body_items (LIMIT_EXCEEDED)",
        INDEP,
        '    if body_items > limits["max_body_items"]:',
        "    if False:",
    ),
    _m(
        "json-items-beside-body",
        "packet-1.1.md §4.5: the items beside the body are at most 2 × max_tensors + 8 "
        "(LIMIT_EXCEEDED)",
        INDEP,
        '    if _items(doc) - body_items > 2 * limits["max_tensors"] + 8:',
        "    if False:",
    ),
    _m(
        "json-items-beside-body-bound-high",
        "packet-1.1.md §4.5: the bound beside the body is 2 × max_tensors + 8, not more",
        INDEP,
        '    if _items(doc) - body_items > 2 * limits["max_tensors"] + 8:',
        '    if _items(doc) - body_items > 2 * limits["max_tensors"] + 9:',
    ),
    _m(
        "json-items-beside-body-bound-low",
        "packet-1.1.md §4.5: a text with exactly 2 × max_tensors + 8 items beside the body is "
        "within the bound",
        INDEP,
        '    if _items(doc) - body_items > 2 * limits["max_tensors"] + 8:',
        '    if _items(doc) - body_items >= 2 * limits["max_tensors"] + 8:',
    ),
    _m(
        "json-tensor-data-length",
        "packet-1.1.md §4.5: a wrong byte count in tensor_data is TENSOR_SHAPE",
        INDEP,
        '        if len(raw) != t["length"]:',
        '        if len(raw) < t["length"]:',
    ),
]

# --------------------------------------------------------------------------- COSE (signing §4, §7)
COSE = [
    _m(
        "cose-tag-98",
        "signing.md §4.1: the entry is a COSE_Sign_Tagged item, tag 98 (SIGNATURE_MALFORMED)",
        VERIFY,
        "    if not (isinstance(item, Tagged) and item.tag == 98):",
        "    if not isinstance(item, Tagged):",
    ),
    _m(
        "cose-deterministic",
        "signing.md §4.4: the signatures item is deterministically encoded",
        VERIFY,
        '    item = _strict(packet.signatures, limits, "signatures entry")',
        '    item = decode_item(packet.signatures, max_depth=limits["max_depth"], tags=True, '
        "canonical=False)",
    ),
    _m(
        "cose-protected-deterministic",
        "signing.md §4.4: every protected header is deterministically encoded",
        VERIFY,
        '    hdr = _strict(prot, limits, "protected header")',
        '    hdr = decode_item(prot, max_depth=limits["max_depth"], tags=True, canonical=False)',
    ),
    _m(
        "cose-body-protected",
        "signing.md §4.1: the body protected header is exactly {3: content type}",
        VERIFY,
        "    if body_prot != BODY_PROTECTED or body_unprot != {}:",
        "    if body_unprot != {}:",
    ),
    _m(
        "cose-body-unprotected",
        "signing.md §4.1: the body unprotected header is the empty map",
        VERIFY,
        "    if body_prot != BODY_PROTECTED or body_unprot != {}:",
        "    if body_prot != BODY_PROTECTED:",
    ),
    _m(
        "cose-payload-attached",
        "signing.md §4.1: the payload is an attached 32-byte string",
        VERIFY,
        "    if not isinstance(payload, bytes) or len(payload) != 32:",
        "    if isinstance(payload, bytes) and len(payload) != 32:",
    ),
    _m(
        "cose-no-signers",
        "signing.md §4.1: the signers array holds at least one COSE_Signature",
        VERIFY,
        "    if not isinstance(signers, list) or not signers:",
        "    if not isinstance(signers, list):",
    ),
    _m(
        "cose-max-signers",
        "signing.md §4.1: more than 256 signers is LIMIT_EXCEEDED, 256 are accepted",
        VERIFY,
        "    if len(signers) > MAX_SIGNERS:",
        "    if len(signers) >= MAX_SIGNERS:",
    ),
    _m(
        "cose-max-signers-first",
        "signing.md §4.1: the signer count is refused before any signer is checked",
        VERIFY,
        "    if len(signers) > MAX_SIGNERS:",
        "    if len(signers) > MAX_SIGNERS and all(isinstance(s, list) and len(s) == 3 "
        "and s[0] for s in signers):",
    ),
    _m(
        "cose-payload-mismatch",
        "signing.md §7 step 5: the payload equals the packet id (PAYLOAD_MISMATCH)",
        VERIFY,
        "    if payload != hashlib.sha256(packet.body_bytes).digest():",
        "    if False:",
    ),
    _m(
        "cose-unsigned",
        "signing.md §7 step 3: no signatures entry is UNSIGNED",
        VERIFY,
        '        raise Refused("UNSIGNED", "no signatures entry")',
        '        raise Refused("POLICY_UNMET", "no signatures entry")',
    ),
    _m(
        "signer-unprotected",
        "signing.md §4.2: a signer's unprotected header is the empty map",
        VERIFY,
        "    if not isinstance(prot, bytes) or not prot or unprot != {} or not isinstance(sig, "
        "bytes):",
        "    if not isinstance(prot, bytes) or not prot or not isinstance(sig, bytes):",
    ),
    _m(
        "signer-no-alg-code",
        "signing.md §7 step 7.2: a missing alg is SIGNATURE_MALFORMED",
        VERIFY,
        '        raise _malformed("no alg")',
        '        raise Refused("ALG_UNSUPPORTED", "no alg")',
    ),
    _m(
        "signer-alg-hashable",
        "signing.md §7 step 7.2: an alg of any type other than the integer -8 is ALG_UNSUPPORTED",
        VERIFY,
        "    if not (isinstance(alg, int) and not isinstance(alg, bool) and alg == EDDSA):",
        '    if {EDDSA: "EdDSA"}.get(alg) != "EdDSA":',
    ),
    _m(
        "signer-extra-label",
        "signing.md §4.2: the protected header holds exactly the labels 1, 4, 14 and 15",
        VERIFY,
        "    if set(hdr) != {1, 4, 14, 15}:",
        "    if not {1, 4, 14, 15} <= set(hdr):",
    ),
    _m(
        "signer-cwt-claims",
        "signing.md §4.2: label 15 is exactly {6: signing time}",
        VERIFY,
        "    if not (isinstance(cwt, dict) and set(cwt) == {6}):",
        "    if not (isinstance(cwt, dict) and 6 in cwt):",
    ),
    _m(
        "signer-time-range",
        "signing.md §4.2: the signing time is an integer in [0, 2^53)",
        VERIFY,
        "and 0 <= iat < 2**53):",
        "and 0 <= iat):",
    ),
    _m(
        "signer-kccs",
        "signing.md §4.2: label 14 is exactly {8: {1: COSE_Key}}",
        VERIFY,
        "    if isinstance(kccs, dict) and set(kccs) == {8}:",
        "    if isinstance(kccs, dict) and 8 in kccs:",
    ),
    _m(
        "signer-cose-key-params",
        "signing.md §7 step 7.4: the signer COSE_Key holds exactly kty, crv and x (KEY_MALFORMED)",
        VERIFY,
        "    if set(cose_key) != {1, -1, -2} or cose_key[1] != 1 or cose_key[-1] != 6:",
        "    if not {1, -1, -2} <= set(cose_key) or cose_key[1] != 1 or cose_key[-1] != 6:",
    ),
    _m(
        "signer-kid",
        "signing.md §4.2: the kid is the SHA-256 of the signer key (SIGNATURE_MALFORMED)",
        VERIFY,
        "    if hashlib.sha256(x).digest() != kid:",
        "    if len(kid) != 32:",
    ),
    _m(
        "key-unchecked",
        "signing.md §3.1: a signer key of small order is KEY_MALFORMED",
        VERIFY,
        "    problem = key_problem(x)\n    if problem:",
        "    problem = None\n    if problem:",
    ),
    _m(
        "key-subgroup",
        "signing.md §3.1: a key outside the prime-order subgroup is KEY_MALFORMED",
        VERIFY,
        "    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):",
        "    if (raw[:31] + bytes([raw[31] & 0x7F])).hex() in SMALL_ORDER_HEX:",
    ),
    _m(
        "ed25519-cofactored",
        "signing.md §3.2: the verification equation is the cofactorless one",
        VERIFY,
        "        nacl.signing.VerifyKey(x).verify(message, sig)",
        COFACTORED.replace("SMALL_ORDER_HEX", repr(SMALL_ORDER_HEX)),
    ),
]

# --------------------------------------------------------------------------- policy (signing §6)
POLICY = [
    _m(
        "k-counts-signatures",
        "signing.md §6.2: signers are distinct by kid; a key counts once",
        VERIFY,
        "        counted.add(kid)\n    if len(counted) < k:",
        "        counted.add(kid)\n        tally = locals().get('tally', 0) + 1\n"
        "    if locals().get('tally', 0) < k:",
    ),
    _m(
        "k-ignores-packet",
        "signing.md §6.2: k is the larger of the verifier's and the packet's min_signers",
        VERIFY,
        '    k = max(k, packet.body["safety"]["min_signers"])',
        "    k = k",
    ),
    _m(
        "k-packet-lowers",
        "signing.md §6.2: the packet may raise k but never lower it",
        VERIFY,
        '    k = max(k, packet.body["safety"]["min_signers"])',
        '    k = packet.body["safety"]["min_signers"]',
    ),
    _m(
        "k-untrusted-counts",
        "signing.md §7 step 7.7: a signer not in the trust store does not count",
        VERIFY,
        '            soft.append(Refused("SIGNER_UNTRUSTED", f"{kid.hex()[:16]} not trusted"))\n'
        "            continue",
        "            counted.add(kid)\n            continue",
    ),
    _m(
        "untrusted-signature-unchecked",
        "signing.md §7: every signature is checked, a co-signer's the verifier does not trust too",
        VERIFY,
        "        kid, key, iat = check_signer(raw, payload, limits)  "
        "# structural problems are fatal",
        "        try:\n"
        "            kid, key, iat = check_signer(raw, payload, limits)\n"
        "        except Refused as exc:\n"
        '            if exc.code != "SIGNATURE_INVALID" or '
        '_strict(raw[0], limits, "")[4] in trust:\n'
        "                raise\n"
        "            continue",
    ),
    _m(
        "window-signing-time-only",
        "signing.md §6.3: the verification time lies in the window too",
        VERIFY,
        "        for moment in (iat, now):",
        "        for moment in (iat,):",
    ),
    _m(
        "window-now-only",
        "signing.md §6.3: the signing time lies in the window too",
        VERIFY,
        "        for moment in (iat, now):",
        "        for moment in (now,):",
    ),
    _m(
        "window-not-before-now-only",
        "signing.md §6.3: the signing time is checked against not_before too",
        VERIFY,
        '            if known["not_before"] is not None and moment < known["not_before"]:',
        '            if known["not_before"] is not None and moment == now and '
        'moment < known["not_before"]:',
    ),
    _m(
        "window-not-before-exclusive",
        "signing.md §6.3: the window includes not_before",
        VERIFY,
        'moment < known["not_before"]:',
        'moment <= known["not_before"]:',
    ),
    _m(
        "window-not-after-exclusive",
        "signing.md §6.3: the window includes not_after",
        VERIFY,
        'moment > known["not_after"]:',
        'moment >= known["not_after"]:',
    ),
    _m(
        "window-fraction-rounded",
        "signing.md §6.1: a fraction of a second is truncated, not rounded up",
        VERIFY,
        "    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))",
        "    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + "
        "(1 if m.group(7) and int(m.group(7)[1:]) else 0)",
    ),
    _m(
        "min-signers-zero",
        "signing.md §6.2: k is at least 1 (USAGE)",
        VERIFY,
        "    if not isinstance(k, int) or isinstance(k, bool) or k < 1:",
        "    if not isinstance(k, int) or isinstance(k, bool) or k < 0:",
    ),
]

# --------------------------------------------------------------------------- provenance (§8)
PROVENANCE = [
    _m(
        "provenance-blank-ascii",
        "signing.md §8: blank means Python's str.isspace white space (U+001C is blank)",
        VERIFY,
        '    if not p["generator"]["name"].strip() or not p["generator"]["version"].strip():',
        '    if not p["generator"]["name"].strip(" \\t\\n\\r\\f\\v") or '
        'not p["generator"]["version"].strip(" \\t\\n\\r\\f\\v"):',
    ),
    _m(
        "provenance-blank-ecma",
        "signing.md §8: U+FEFF is not white space (ECMA-262's \\s is not the rule)",
        VERIFY,
        '    if not p["generator"]["name"].strip() or not p["generator"]["version"].strip():',
        '    if not p["generator"]["name"].strip().strip("\\ufeff") or '
        'not p["generator"]["version"].strip().strip("\\ufeff"):',
    ),
    _m(
        "provenance-task-name",
        "signing.md §8: provenance.task.name is not blank",
        VERIFY,
        '    if not p["task"]["name"].strip():',
        "    if False:",
    ),
    _m(
        "provenance-parameters",
        "signing.md §8: provenance.parameters has at least one entry",
        VERIFY,
        '    if not p["parameters"]:',
        "    if False:",
    ),
    _m(
        "provenance-task-inputs",
        "signing.md §8: provenance.task_inputs_used is at least 1",
        VERIFY,
        '    if p["task_inputs_used"] < 1:',
        "    if False:",
    ),
    _m(
        "provenance-concept-probes",
        "signing.md §8: with concepts, provenance.concept_probes_used is at least 1",
        VERIFY,
        '    if body["concepts"] and p["concept_probes_used"] < 1:',
        "    if False:",
    ),
    _m(
        "provenance-parents",
        "signing.md §8: provenance.parents lists no packet id twice",
        VERIFY,
        '    if len(set(p["parents"])) != len(p["parents"]):',
        "    if False:",
    ),
]

# --------------------------------------------------------------------------- trust store (§6.1)
TRUST = [
    _m(
        "trust-top-members",
        "signing.md §6.1: the trust store has the single member keys",
        VERIFY,
        '    if not isinstance(doc, dict) or set(doc) != {"keys"} or not isinstance(doc["keys"], '
        "list):",
        '    if not isinstance(doc, dict) or "keys" not in doc or not isinstance(doc["keys"], '
        "list):",
    ),
    _m(
        "trust-entry-members",
        "signing.md §6.1: an entry has no member other than those listed",
        VERIFY,
        "        if not isinstance(entry, dict) or set(entry) - ENTRY_MEMBERS:",
        "        if not isinstance(entry, dict):",
    ),
    _m(
        "trust-kty",
        'signing.md §6.1: kty is "OKP"',
        VERIFY,
        '        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":',
        '        if entry.get("crv") != "Ed25519":',
    ),
    _m(
        "trust-alg-use",
        'signing.md §6.1: alg, when present, is "EdDSA"; use "sig"',
        VERIFY,
        '        if entry.get("alg", "EdDSA") != "EdDSA" or entry.get("use", "sig") != "sig":',
        '        if entry.get("use", "sig") != "sig":',
    ),
    _m(
        "trust-name-blank",
        "signing.md §6.1: name is a non-blank string",
        VERIFY,
        "        if not isinstance(name, str) or not name.strip() or len(name) > 1024:",
        "        if not isinstance(name, str) or not name or len(name) > 1024:",
    ),
    _m(
        "trust-name-length",
        "signing.md §6.1: name has at most 1024 characters",
        VERIFY,
        "        if not isinstance(name, str) or not name.strip() or len(name) > 1024:",
        "        if not isinstance(name, str) or not name.strip():",
    ),
    _m(
        "trust-x-padding",
        "signing.md §6.1: x is unpadded base64url, 43 characters",
        VERIFY,
        '        if not isinstance(x, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", x):',
        '        x = x.rstrip("=") if isinstance(x, str) else x\n'
        '        if not isinstance(x, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", x):',
    ),
    _m(
        "trust-x-alphabet",
        "signing.md §6.1: x uses the base64url alphabet, not the standard one",
        VERIFY,
        '        if not isinstance(x, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", x):',
        '        x = x.replace("+", "-").replace("/", "_") if isinstance(x, str) else x\n'
        '        if not isinstance(x, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", x):',
    ),
    _m(
        "trust-x-canonical",
        "signing.md §6.1: x is the canonical base64url of its bytes",
        VERIFY,
        '        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != x:',
        "        if False:",
    ),
    _m(
        "trust-kid",
        "signing.md §6.1: kid, when present, is the hex SHA-256 of the key",
        VERIFY,
        '        if "kid" in entry and entry["kid"] != kid.hex():',
        "        if False:",
    ),
    _m(
        "trust-time-zone",
        "signing.md §6.1: times are UTC written with Z, no other offset",
        VERIFY,
        'TIME = re.compile(r"^(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})(\\.\\d+)?Z$")',
        'TIME = re.compile(r"^(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})(\\.\\d+)?'
        '(?:Z|[+-]00:00)$")',
    ),
    _m(
        "trust-time-case",
        "signing.md §6.1: the T and Z of a time are upper case",
        VERIFY,
        'TIME = re.compile(r"^(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})(\\.\\d+)?Z$")',
        'TIME = re.compile(r"^(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})(\\.\\d+)?Z$", '
        "re.IGNORECASE)",
    ),
    _m(
        "trust-time-exists",
        "signing.md §6.1: a date that does not exist (February 30) is refused",
        VERIFY,
        "1 <= d <= calendar.monthrange(y, mo)[1]",
        "1 <= d <= 31",
    ),
    _m(
        "trust-time-leap-second",
        "signing.md §6.1: a leap second :60 is refused",
        VERIFY,
        "        and s < 60\n",
        "        and s <= 60\n",
    ),
    _m(
        "trust-window-order",
        "signing.md §6.1: not_before is at most not_after",
        VERIFY,
        "        if nb is not None and na is not None and nb > na:",
        "        if False:",
    ),
    _m(
        "trust-conflicting-duplicate",
        "signing.md §6.1: a key listed twice with another name or window is refused",
        VERIFY,
        "        if kid in out and out[kid] != record:",
        "        if False:",
    ),
]

# --------------------------------------------------------------------------- the reference
REFERENCE = [
    _m(
        "ref-trust-duplicate-member",
        "signing.md §6.1: a member named twice in a JSON trust store is TRUST_STORE_MALFORMED",
        "m2kt_ref/packet/trust.py",
        "    if len(out) != len(pairs):",
        "    if False:",
    ),
    _m(
        "ref-signatures-entry-tags",
        "packet-1.1.md §4.1: readers do not interpret tags in the signatures entry",
        "m2kt_ref/packet/codec.py",
        '        {"semantic_decoders": KeepTags()}\n        if tags',
        "        {}\n        if tags",
    ),
    _m(
        "ref-window-verification-time",
        "signing.md §6.3: the verification time lies in the window too",
        "m2kt_ref/packet/signing.py",
        '    problem = trusted.window_error(p.signing_time, "signing time") or '
        "trusted.window_error(\n"
        '        now, "verification time"\n    )',
        '    problem = trusted.window_error(p.signing_time, "signing time")',
    ),
    _m(
        "ref-distinct-signers",
        "signing.md §6.2: signers are distinct by kid; a key counts once",
        "m2kt_ref/packet/signing.py",
        "                duplicate_of = seen.get(p.kid)",
        "                duplicate_of = None",
    ),
]

ALL: list[Mutant] = [
    *ENVELOPE,
    *CBOR,
    *LIMITS,
    *SCHEMA,
    *SEMANTICS,
    *TENSOR_DATA,
    *JSON_FORM,
    *COSE,
    *POLICY,
    *PROVENANCE,
    *TRUST,
    *REFERENCE,
]
BY_ID: dict[str, Mutant] = {m.id: m for m in ALL}
assert len(BY_ID) == len(ALL), "mutant ids are unique"
