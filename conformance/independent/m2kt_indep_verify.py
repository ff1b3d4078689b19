"""The verifier half of the independent implementation (spec/signing.md), no m2kt_ref inside.

COSE_Sign (RFC 9052) is parsed with ``m2kt_indep``'s own CBOR decoder, each Sig_structure is
written with its own canonical encoder, and Ed25519 (RFC 8032) is checked with pynacl.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import json
import re
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing
from m2kt_indep import Packet, Refused, Tagged, canonical, decode_item

CONTENT_TYPE = "application/m2kt-packet-id"
BODY_PROTECTED = canonical({3: CONTENT_TYPE})
EDDSA = -8
MAX_SIGNERS = 256
L = 2**252 + 27742317777372353535851937790883648493
TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z$")
ENTRY_MEMBERS = {"kty", "crv", "x", "kid", "alg", "use", "name", "not_before", "not_after"}


def key_problem(raw: Any) -> str | None:
    """Why ``raw`` is not an acceptable Ed25519 public key (None when it is)."""
    if not isinstance(raw, bytes) or len(raw) != 32:
        return "not 32 bytes"
    # canonical encoding, not of small order, in the prime-order subgroup (libsodium)
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        return "not a valid Ed25519 point of the prime-order subgroup"
    return None


def rfc3339(text: Any, code: str) -> int:
    m = TIME.match(text) if isinstance(text, str) else None
    if not m:
        raise Refused(code, f"{text!r} is not an RFC 3339 UTC time")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    if not (
        y >= 1
        and 1 <= mo <= 12
        and 1 <= d <= calendar.monthrange(y, mo)[1]
        and h < 24
        and mi < 60
        and s < 60
    ):
        raise Refused(code, f"{text!r} is not a valid time")
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


def parse_trust_store(doc: Any) -> dict[bytes, dict[str, Any]]:
    """kid -> {key, name, not_before, not_after} from a JWK-Set trust store (spec/signing.md)."""

    def bad(why: str) -> Refused:
        return Refused("TRUST_STORE_MALFORMED", why)

    if not isinstance(doc, dict) or set(doc) != {"keys"} or not isinstance(doc["keys"], list):
        raise bad('expected {"keys": [...]}')
    out: dict[bytes, dict[str, Any]] = {}
    for entry in doc["keys"]:
        if not isinstance(entry, dict) or set(entry) - ENTRY_MEMBERS:
            raise bad("entry is not an object of known members")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            raise bad("not an OKP Ed25519 key")
        if entry.get("alg", "EdDSA") != "EdDSA" or entry.get("use", "sig") != "sig":
            raise bad("alg or use")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 1024:
            raise bad("name")
        x = entry.get("x")
        if not isinstance(x, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", x):
            raise bad("x is not 43 base64url characters")
        try:
            raw = base64.urlsafe_b64decode(x + "=")
        except (binascii.Error, ValueError):
            raise bad("x") from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != x:
            raise bad("x is not canonical base64url")
        problem = key_problem(raw)
        if problem:
            raise Refused("KEY_MALFORMED", f"trust store key: {problem}")
        kid = hashlib.sha256(raw).digest()
        if "kid" in entry and entry["kid"] != kid.hex():
            raise bad("kid is not the SHA-256 of x")
        nb = (
            rfc3339(entry["not_before"], "TRUST_STORE_MALFORMED") if "not_before" in entry else None
        )
        na = rfc3339(entry["not_after"], "TRUST_STORE_MALFORMED") if "not_after" in entry else None
        if nb is not None and na is not None and nb > na:
            raise bad("not_before after not_after")
        record = {"key": raw, "name": name, "not_before": nb, "not_after": na}
        if kid in out and out[kid] != record:
            raise bad("a key listed twice with different attributes")
        out[kid] = record
    return out


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise Refused("TRUST_STORE_MALFORMED", "a member named twice in one object")
    return out


def _no_constants(name: str) -> Any:
    raise Refused("TRUST_STORE_MALFORMED", f"{name} is not JSON")


def load_policy(inp: dict[str, Any]) -> tuple[dict[bytes, dict[str, Any]], int, int]:
    doc = inp.get("trust")
    if "trust_text" in inp:  # the document's text: its spelling matters (a member twice)
        try:
            doc = json.loads(
                inp["trust_text"],
                object_pairs_hook=_no_duplicate_members,
                parse_constant=_no_constants,
            )
        except (ValueError, RecursionError):
            raise Refused("TRUST_STORE_MALFORMED", "the trust store is not JSON") from None
    trust = parse_trust_store(doc)
    k = inp.get("min_signers", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise Refused("USAGE", "min_signers must be at least 1")
    return trust, k, rfc3339(inp.get("now"), "USAGE")


def provenance_incomplete(body: dict[str, Any]) -> str | None:
    p = body["provenance"]
    if not p["generator"]["name"].strip() or not p["generator"]["version"].strip():
        return "generator"
    if not p["task"]["name"].strip():
        return "task name"
    if not p["parameters"]:
        return "parameters empty"
    if p["task_inputs_used"] < 1:
        return "no task inputs"
    if body["concepts"] and p["concept_probes_used"] < 1:
        return "no concept probes"
    if len(set(p["parents"])) != len(p["parents"]):
        return "a parent listed twice"
    return None


def _malformed(why: str) -> Refused:
    return Refused("SIGNATURE_MALFORMED", why)


def _strict(item: bytes, limits: dict[str, int], what: str) -> Any:
    try:
        return decode_item(item, max_depth=limits["max_depth"], tags=True)
    except Refused:
        raise _malformed(f"{what} is not deterministically encoded, well-formed CBOR") from None


def check_signer(raw: Any, payload: bytes, limits: dict[str, int]) -> tuple[bytes, bytes, int]:
    """(kid, key, signing time) of a COSE_Signature whose signature verifies; raises otherwise."""
    if not (isinstance(raw, list) and len(raw) == 3):
        raise _malformed("COSE_Signature is not [protected, unprotected, signature]")
    prot, unprot, sig = raw
    if not isinstance(prot, bytes) or not prot or unprot != {} or not isinstance(sig, bytes):
        raise _malformed("COSE_Signature members")
    hdr = _strict(prot, limits, "protected header")
    if not isinstance(hdr, dict):
        raise _malformed("protected header is not a map")
    if 1 not in hdr:
        raise _malformed("no alg")
    alg = hdr[1]
    if not (isinstance(alg, int) and not isinstance(alg, bool) and alg == EDDSA):
        raise Refused("ALG_UNSUPPORTED", f"alg {alg!r}")
    if set(hdr) != {1, 4, 14, 15}:
        raise _malformed("protected header labels are not exactly 1, 4, 14, 15")
    kid, kccs, cwt = hdr[4], hdr[14], hdr[15]
    if not isinstance(kid, bytes) or len(kid) != 32:
        raise _malformed("kid")
    if not (isinstance(cwt, dict) and set(cwt) == {6}):
        raise _malformed("CWT claims")
    iat = cwt[6]
    if not (isinstance(iat, int) and not isinstance(iat, bool) and 0 <= iat < 2**53):
        raise _malformed("signing time")
    cose_key = None
    if isinstance(kccs, dict) and set(kccs) == {8}:
        cnf = kccs[8]
        if isinstance(cnf, dict) and set(cnf) == {1}:
            cose_key = cnf[1]
    if not isinstance(cose_key, dict):
        raise _malformed("kccs is not {8: {1: COSE_Key}}")
    if set(cose_key) != {1, -1, -2} or cose_key[1] != 1 or cose_key[-1] != 6:
        raise Refused("KEY_MALFORMED", "signer key is not {1: 1, -1: 6, -2: x}")
    x = cose_key[-2]
    problem = key_problem(x)
    if problem:
        raise Refused("KEY_MALFORMED", f"signer key: {problem}")
    if hashlib.sha256(x).digest() != kid:
        raise _malformed("kid is not the SHA-256 of the key")
    message = canonical(["Signature", BODY_PROTECTED, prot, b"", payload])
    if len(sig) != 64 or int.from_bytes(sig[32:], "little") >= L:
        raise Refused("SIGNATURE_INVALID", "signature length or S not canonical")
    try:
        nacl.signing.VerifyKey(x).verify(message, sig)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise Refused("SIGNATURE_INVALID", "Ed25519 signature does not verify") from None
    return kid, x, iat


def verify(packet: Packet, policy: tuple, limits: dict[str, int]) -> list[str]:
    """Hex key ids of the distinct trusted signers counted toward k; raises the first problem."""
    trust, k, now = policy
    k = max(k, packet.body["safety"]["min_signers"])
    if packet.signatures is None:
        raise Refused("UNSIGNED", "no signatures entry")
    item = _strict(packet.signatures, limits, "signatures entry")
    if not (isinstance(item, Tagged) and item.tag == 98):
        raise _malformed("not COSE_Sign_Tagged (98)")
    value = item.value
    if not (isinstance(value, list) and len(value) == 4):
        raise _malformed("COSE_Sign is not an array of 4")
    body_prot, body_unprot, payload, signers = value
    if body_prot != BODY_PROTECTED or body_unprot != {}:
        raise _malformed("body headers")
    if not isinstance(payload, bytes) or len(payload) != 32:
        raise _malformed("payload is not 32 bytes")
    if not isinstance(signers, list) or not signers:
        raise _malformed("no signers")
    if len(signers) > MAX_SIGNERS:
        raise Refused("LIMIT_EXCEEDED", f"{len(signers)} signers")
    if payload != hashlib.sha256(packet.body_bytes).digest():
        raise Refused("PAYLOAD_MISMATCH", "the signatures cover another packet")
    problem = provenance_incomplete(packet.body)
    if problem:
        raise Refused("PROVENANCE_INCOMPLETE", problem)
    counted: set[bytes] = set()
    soft: list[Refused] = []
    for raw in signers:
        kid, key, iat = check_signer(raw, payload, limits)  # structural problems are fatal
        known = trust.get(kid)
        if known is None or known["key"] != key:
            soft.append(Refused("SIGNER_UNTRUSTED", f"{kid.hex()[:16]} not trusted"))
            continue
        window_problem = None
        for moment in (iat, now):
            if known["not_before"] is not None and moment < known["not_before"]:
                window_problem = Refused("KEY_NOT_YET_VALID", known["name"])
            elif known["not_after"] is not None and moment > known["not_after"]:
                window_problem = Refused("KEY_EXPIRED", known["name"])
            if window_problem:
                break
        if window_problem:
            soft.append(window_problem)
            continue
        counted.add(kid)
    if len(counted) < k:
        raise soft[0] if soft else Refused("POLICY_UNMET", f"{len(counted)} of {k} signers")
    return sorted(kid.hex() for kid in counted)
