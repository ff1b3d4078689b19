"""Ingestion reports: schema validation, atomic writing, and the operator's signed receipt.

An ingestion report (``schemas/ingestion-report.schema.json``) is a JSON document written by
:func:`m2kt_ref.transfer.ingest` and ``m2kt ingest``. This module needs no torch: anyone can
validate a report and check its receipt with the format half of the library.

**Receipt.** A student's operator may sign a report (``m2kt ingest --sign-key KEY``). The
signature ties the packet id, the student digests, the metrics and the decision together:

1. ``payload = SHA-256(canonical_cbor(report without "receipt"))``: the report's JSON data model
   encoded as deterministic CBOR (RFC 8949 §4.2.1, as the packet body is), so the bytes signed
   do not depend on JSON whitespace or key order;
2. a ``COSE_Sign1`` (RFC 9052 §4.2, tag 18) over that 32-byte payload, attached, EdDSA/Ed25519,
   protected header ``{1: -8, 3: "application/m2kt-ingestion-report", 4: kid, 14: kccs,
   15: {6: signing time}}``, the same header labels as packet signatures (spec/signing.md §4),
   unprotected header empty;
3. stored in the report as ``receipt: {"cose_sign1": base64, "kid": hex, "payload": hex,
   "signing_time": RFC 3339}``; the other members repeat what the COSE item holds, for readers.

Floats survive the JSON round trip exactly (Python writes the shortest repr), so a verifier that
reads ``report.json`` recomputes the same payload. Non-finite numbers never appear in a report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cbor2

from m2kt_ref.errors import FileAccessError, LimitError, M2ktError, SignatureError, UsageError
from m2kt_ref.packet import json_scan
from m2kt_ref.packet.codec import canonical_cbor, decode_strict_cbor
from m2kt_ref.packet.files import write_atomic
from m2kt_ref.packet.keys import ALG_EDDSA, PublicKey, SigningKey
from m2kt_ref.packet.limits import DEFAULT_LIMITS
from m2kt_ref.packet.trust import TrustStore, format_time

__all__ = [
    "RECEIPT_CONTENT_TYPE",
    "REPORT_FORMAT",
    "REPORT_SCHEMA",
    "REPORT_VERSION",
    "ReceiptCheck",
    "json_safe",
    "read_report",
    "receipt_payload",
    "report_errors",
    "sign_report",
    "validate_report",
    "verify_receipt",
    "write_report",
]

REPORT_FORMAT = "m2kt.ingestion-report"
REPORT_VERSION = 1
#: File name of the schema among the shipped schemas.
REPORT_SCHEMA = "ingestion-report.schema.json"
#: COSE content type (label 3) of a receipt's payload.
RECEIPT_CONTENT_TYPE = "application/m2kt-ingestion-report"
COSE_SIGN1_TAG = 18
_H_ALG, _H_CTY, _H_KID, _H_KCCS, _H_CWT = 1, 3, 4, 14, 15
_CLAIM_IAT, _CLAIM_CNF, _CNF_KEY = 6, 8, 1


def json_safe(value: Any) -> Any:
    """A copy of ``value`` with only JSON types: tuples become lists, numpy scalars Python
    numbers, and non-finite floats ``None`` (a report never holds NaN or infinity)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        return json_safe(item())
    raise UsageError(f"a report cannot hold a {type(value).__name__}")


# --------------------------------------------------------------------------- schema


def report_errors(doc: Any) -> list[M2ktError]:
    """Every schema violation of ``doc`` (``SCHEMA_VIOLATION`` errors with paths)."""
    from m2kt_ref.packet.schema import SchemaValidator

    return list(SchemaValidator(REPORT_SCHEMA, path_prefix="").iter_errors(doc))


def validate_report(doc: Any) -> None:
    """Raise the first schema violation of ``doc`` (``ValidationError`` ``SCHEMA_VIOLATION``)."""
    for problem in report_errors(doc):
        raise problem


def write_report(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as indented JSON (sorted keys, final newline), atomically."""
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    write_atomic(path, [text.encode("utf-8")])


#: Reports come from whoever ingested a packet: their size and item count are bounded before
#: they are parsed (a report holds a few hundred items; these leave room for thousands of
#: concepts' figures), and so is their nesting.
MAX_REPORT_BYTES = 1 << 24
MAX_REPORT_ITEMS = 1 << 20


def read_report(path: str | Path) -> dict[str, Any]:
    """Read a report file (JSON object).

    Raises:
        FileAccessError: ``IO_ERROR``; UsageError: ``USAGE`` when not a JSON object (invalid
        JSON, nested beyond what the parser allows); LimitError: ``LIMIT_EXCEEDED`` above
        :data:`MAX_REPORT_BYTES` or :data:`MAX_REPORT_ITEMS`.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size  # 0 for a pipe: then read up to the bound
            if size > MAX_REPORT_BYTES:
                raise LimitError(f"{path} is larger than {MAX_REPORT_BYTES} bytes: not a report")
            raw = f.read() if size else f.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise FileAccessError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_REPORT_BYTES:
        raise LimitError(f"{path} is larger than {MAX_REPORT_BYTES} bytes: not a report")
    if json_scan.item_bound(raw) > MAX_REPORT_ITEMS:
        raise LimitError(f"{path} holds more than {MAX_REPORT_ITEMS} JSON items: not a report")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise UsageError(f"{path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path} is not a JSON object")
    return doc


# --------------------------------------------------------------------------- receipt


def receipt_payload(doc: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical CBOR of the report without its ``receipt`` member."""
    body = {k: v for k, v in doc.items() if k != "receipt"}
    return hashlib.sha256(canonical_cbor(json_safe(body))).digest()


def _protected(key: SigningKey, signing_time: int) -> bytes:
    return canonical_cbor(
        {
            _H_ALG: ALG_EDDSA,
            _H_CTY: RECEIPT_CONTENT_TYPE,
            _H_KID: key.kid,
            _H_KCCS: {_CLAIM_CNF: {_CNF_KEY: key.public_key.cose_key()}},
            _H_CWT: {_CLAIM_IAT: signing_time},
        }
    )


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 §4.4, context "Signature1", no external AAD."""
    return canonical_cbor(["Signature1", protected, b"", payload])


def sign_report(
    doc: Mapping[str, Any], key: SigningKey, *, signing_time: int | None = None
) -> dict[str, Any]:
    """A copy of ``doc`` carrying the operator's receipt (replacing any previous one).

    Args:
        doc: the report (any JSON-able mapping; an ingestion report in practice).
        key: the operator's secret key.
        signing_time: Unix seconds recorded in the protected header; now when None.

    Returns:
        ``doc`` in JSON types (tuples as lists, numpy scalars as numbers) plus ``receipt``:
        ``cose_sign1`` (base64), ``kid`` and ``payload`` (hex), ``signing_time`` (RFC 3339).

    Raises:
        UsageError: ``USAGE`` when ``doc`` holds a value with no JSON form.

    Example:
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> report = {"format": "m2kt.ingestion-report", "decision": "accepted"}
        >>> signed = m2kt_ref.sign_report(report, key, signing_time=0)
        >>> sorted(signed["receipt"]), signed["receipt"]["signing_time"]
        (['cose_sign1', 'kid', 'payload', 'signing_time'], '1970-01-01T00:00:00Z')
        >>> m2kt_ref.verify_receipt(signed).valid
        True
    """
    moment = int(time.time()) if signing_time is None else int(signing_time)
    out = json_safe({k: v for k, v in doc.items() if k != "receipt"})
    payload = receipt_payload(out)
    protected = _protected(key, moment)
    signature = key.sign(_sig_structure(protected, payload))
    item = canonical_cbor(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    out["receipt"] = {
        "cose_sign1": base64.b64encode(item).decode("ascii"),
        "kid": key.kid.hex(),
        "payload": payload.hex(),
        "signing_time": format_time(moment),
    }
    return out


class ReceiptCheck(dict):
    """Result of :func:`verify_receipt`: ``valid``, ``kid``, ``name`` (from the trust store),
    ``signing_time`` and ``errors`` (codes and messages), as a plain dict."""

    @property
    def valid(self) -> bool:
        return bool(self["valid"])


def verify_receipt(doc: Mapping[str, Any], trust: TrustStore | None = None) -> ReceiptCheck:
    """Check a report's receipt: structure, payload = this report, Ed25519 signature, and (when
    ``trust`` is given) that the signer's key is trusted.

    Never raises for a bad receipt: problems are listed in ``errors`` with the signing codes
    (``UNSIGNED``, ``SIGNATURE_MALFORMED``, ``PAYLOAD_MISMATCH``, ``SIGNATURE_INVALID``,
    ``SIGNER_UNTRUSTED``).

    Args:
        doc: the report, e.g. as read back from ``report.json``.
        trust: the operators' keys; None checks the signature without checking who signed.

    Returns:
        A :class:`ReceiptCheck` (a dict): ``valid``, ``kid``, ``name`` (the trusted key's
        name), ``signing_time`` and ``errors`` (``{"code", "message", "path"}`` dicts).

    Raises:
        UsageError: ``USAGE`` when ``doc`` holds a value with no JSON form (never the case for
            a document read from JSON).

    Example:
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> signed = m2kt_ref.sign_report({"decision": "accepted"}, key, signing_time=0)
        >>> trust = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(key.public_key, "operator")])
        >>> check = m2kt_ref.verify_receipt(signed, trust)
        >>> check.valid, check["name"]
        (True, 'operator')
        >>> tampered = {**signed, "decision": "rolled_back"}
        >>> [e["code"] for e in m2kt_ref.verify_receipt(tampered)["errors"]]
        ['PAYLOAD_MISMATCH']
        >>> [e["code"] for e in m2kt_ref.verify_receipt({"decision": "accepted"})["errors"]]
        ['UNSIGNED']
    """
    errors: list[dict[str, str]] = []
    out = ReceiptCheck(valid=False, kid=None, name=None, signing_time=None, errors=errors)

    def fail(code: str, message: str) -> ReceiptCheck:
        errors.append(SignatureError(code, message, path="/receipt").to_dict())
        return out

    receipt = doc.get("receipt")
    if receipt is None:
        return fail("UNSIGNED", "the report carries no receipt")
    try:
        item = base64.b64decode(receipt["cose_sign1"], validate=True)
        value = decode_strict_cbor(item, DEFAULT_LIMITS, "/receipt/cose_sign1")
    except (KeyError, TypeError, ValueError, M2ktError):
        return fail("SIGNATURE_MALFORMED", "receipt.cose_sign1 is not base64 CBOR")
    if not (
        isinstance(value, cbor2.CBORTag)
        and value.tag == COSE_SIGN1_TAG
        and isinstance(value.value, (list, tuple))  # cbor2 decodes arrays in tags as tuples
        and len(value.value) == 4
        and canonical_cbor(value) == item
    ):
        return fail("SIGNATURE_MALFORMED", "not a deterministically encoded COSE_Sign1")
    protected, unprotected, payload, signature = value.value
    if not (
        isinstance(protected, bytes)
        and isinstance(unprotected, Mapping)
        and len(unprotected) == 0
        and isinstance(payload, bytes)
        and isinstance(signature, bytes)
    ):
        return fail("SIGNATURE_MALFORMED", "COSE_Sign1 members have the wrong types")
    try:
        header = decode_strict_cbor(protected, DEFAULT_LIMITS, "/receipt/protected")
        key = PublicKey.from_cose_key(header[_H_KCCS][_CLAIM_CNF][_CNF_KEY])
        moment = header[_H_CWT][_CLAIM_IAT]
        ok = (
            header[_H_ALG] == ALG_EDDSA
            and header[_H_CTY] == RECEIPT_CONTENT_TYPE
            and header[_H_KID] == key.kid
            and isinstance(moment, int)
        )
    except (KeyError, TypeError, M2ktError):
        ok = False
    if not ok:
        return fail("SIGNATURE_MALFORMED", "the protected header is not a receipt header")
    out["kid"], out["signing_time"] = key.kid.hex(), format_time(moment)
    if payload != receipt_payload(doc):
        return fail("PAYLOAD_MISMATCH", "the receipt signs another report (contents changed)")
    try:
        key.verify(_sig_structure(protected, payload), signature)
    except SignatureError as exc:
        return fail(exc.code, exc.message)
    if trust is not None:
        known = trust.get(key.kid)
        if known is None or known.public_key != key:
            return fail("SIGNER_UNTRUSTED", f"key {key.kid.hex()[:16]}… is not trusted")
        out["name"] = known.name
    out["valid"] = True
    return out
