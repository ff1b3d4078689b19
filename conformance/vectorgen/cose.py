"""The verifier vectors' signers: keys from fixed seeds, trust stores, COSE items by hand.

Well-formed signatures in :mod:`verifier` come from the reference's public signing API; the
crafted ones (wrong algorithm, bad keys, malformed COSE) are written here with :mod:`rawcbor` and
signed with pynacl directly, so that the check that fails is the one the vector names. Keys come
from fixed seeds and every signature has the same signing time, so the output never changes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
import nacl.signing

from .packets import Built
from .rawcbor import enc
from .reference import BODY_PROTECTED, SigningKey, sig_structure, trust_entry

#: 2026-01-01T00:00:00Z, the signing time of every signature.
SIGNED_AT = 1767225600
#: The verification time every vector states.
NOW = "2026-06-01T00:00:00Z"
#: Order of the Ed25519 group (RFC 8032 §5.1).
L = 2**252 + 27742317777372353535851937790883648493


SEEDS: dict[bytes, bytes] = {}


def key(name: str) -> SigningKey:
    """A signing key from the fixed seed SHA-256("m2kt-conformance/NAME")."""
    seed = hashlib.sha256(f"m2kt-conformance/{name}".encode()).digest()
    k = SigningKey(seed)
    SEEDS[k.kid] = seed
    return k


ALICE, BOB, CAROL, MALLORY, DAVE, ERIN = (
    key(n) for n in ("alice", "bob", "carol", "mallory", "dave", "erin")
)
NAMES = {
    k.kid: n
    for k, n in (
        (ALICE, "alice"),
        (BOB, "bob"),
        (CAROL, "carol"),
        (MALLORY, "mallory"),
        (DAVE, "dave"),
        (ERIN, "erin"),
    )
}


def store(*entries: tuple[SigningKey, str] | dict[str, Any]) -> dict[str, Any]:
    keys = []
    for e in entries:
        if isinstance(e, dict):
            keys.append(e)
        else:
            keys.append(trust_entry(e[0].public_key, e[1]))
    return {"keys": keys}


def protected(k: SigningKey, *, alg: Any = -8, iat: int = SIGNED_AT, **over: Any) -> bytes:
    """A signer's protected header; ``over`` replaces or (value None) removes labels."""
    hdr: dict[Any, Any] = {
        1: alg,
        4: k.kid,
        14: {8: {1: {1: 1, -1: 6, -2: k.public_key.raw}}},
        15: {6: iat},
    }
    for label, value in over.items():
        n = int(label.removeprefix("l").replace("m", "-"))
        if value is None:
            hdr.pop(n, None)
        else:
            hdr[n] = value
    return enc(hdr)


def ed25519(seed_key: SigningKey, message: bytes) -> bytes:
    return nacl.signing.SigningKey(SEEDS[seed_key.kid]).sign(message).signature


def cose_sign(
    payload: bytes | None,
    signers: list[Any],
    *,
    tagged: bool = True,
    body_protected: bytes = BODY_PROTECTED,
) -> bytes:
    item = enc([body_protected, {}, payload, signers])
    return (b"\xd8\x62" + item) if tagged else item


def signer(
    k: SigningKey, payload: bytes, prot: bytes | None = None, by: SigningKey | None = None
) -> list[Any]:
    """One COSE_Signature by ``k`` (made with ``by``'s key if given) over ``payload``."""
    prot = prot if prot is not None else protected(k)
    return [prot, {}, ed25519(by or k, enc(["Signature", BODY_PROTECTED, prot, b"", payload]))]


#: tag -> the sections of spec/signing.md (and the format) a vector with that tag exercises.
TAG_SECTIONS = {
    "valid": ["signed", "sig-structure"],
    "multi-signer": ["policy"],
    "k-of-n": ["policy"],
    "duplicate-signer": ["policy"],
    "validity-window": ["window"],
    "untrusted": ["trust"],
    "trust-store": ["trust"],
    "unsigned": ["cose"],
    "stripping": ["policy"],
    "substitution": ["signed"],
    "tamper": ["signed"],
    "bad-signature": ["ed25519-sigs", "sig-structure"],
    "ed25519-edge": ["ed25519-sigs"],
    "key": ["ed25519-keys", "cose-signature"],
    "alg": ["cose-signature"],
    "malformed-cose": ["cose", "cose-signature", "cose-encoding"],
    "limits": ["cose", "limits"],
    "provenance": ["provenance-complete"],
    "usage": ["policy", "requests"],
}


def spec_of(tags: list[str], encoding: str) -> list[str]:
    out = ["verify"]
    for tag in tags:
        out += [s for s in TAG_SECTIONS.get(tag, []) if s not in out]
    if encoding == "json":
        out.append("json")
    return out


def signature_intermediates(b: Built) -> dict[str, Any]:
    """The values a verifier computes on the way (per signer: header, kid, key, Sig_structure,
    signature), decoded with cbor2 and tolerant of the malformed items some vectors hold."""
    out: dict[str, Any] = {"packet_id": b.packet_id, "cose_payload_hex": b.packet_id}
    if b.signatures is None:
        return out
    try:
        item = cbor2.loads(b.signatures)
        sigs = item.value[3]
        pay = item.value[2]
    except Exception:
        return out
    rows = []
    for raw in sigs if isinstance(sigs, (list, tuple)) else []:
        if not (isinstance(raw, (list, tuple)) and len(raw) == 3):
            continue
        prot, _, sig = raw
        row: dict[str, Any] = {"protected_hex": bytes(prot).hex()}
        try:
            hdr = cbor2.loads(prot)
            kid = hdr.get(4)
            row["kid"] = kid.hex() if isinstance(kid, bytes) else None
            row["name"] = NAMES.get(kid)
            row["public_key_hex"] = hdr[14][8][1][-2].hex()
        except Exception:
            pass
        if isinstance(pay, bytes) and isinstance(prot, bytes):
            row["sig_structure_hex"] = sig_structure(prot, pay).hex()
        if isinstance(sig, bytes):
            row["signature_hex"] = sig.hex()
        rows.append(row)
    out["signers"] = rows
    return out
