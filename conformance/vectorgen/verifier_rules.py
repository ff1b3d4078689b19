"""Verifier vectors for rules that single-rule mutants broke unnoticed (``conformance/mutants``).

How k-of-n counts, when validity windows are evaluated (signing and verification time, bounds,
fractions), labels and claims of the protected header, an ``alg`` of any type, keys and ``R``
points with a torsion component, co-signatures by keys the verifier does not trust, complete
provenance (white space as Python's ``str.isspace``), and every rule of the JSON trust store
(members, base64url spelling, time-zone spelling, dates that do not exist, a member named twice).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import nacl.bindings as sodium

from .common import FULL_TENSORS, full_fields
from .cose import (
    ALICE,
    MALLORY,
    NOW,
    SEEDS,
    SIGNED_AT,
    L,
    cose_sign,
    protected,
    signature_intermediates,
    signer,
    spec_of,
    store,
)
from .packets import Bases, Built, build, mutate
from .rawcbor import enc
from .reference import BODY_PROTECTED, SigningKey, codec, sign_packet, summarize, trust_entry
from .suite import Suite

#: An Ed25519 point of order 8 (signing.md §3.1, the list of small-order encodings).
TORSION = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")


def secret_scalar(k: SigningKey) -> int:
    """The clamped secret scalar a of a key, from its seed (RFC 8032 §5.1.5)."""
    h = bytearray(hashlib.sha512(SEEDS[k.kid]).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def add_vectors(s: Suite, bases: Bases) -> None:
    """Policy, windows, COSE headers, torsion, provenance, trust stores."""
    full = bases.full
    payload = bytes.fromhex(full.packet_id)
    decoded = codec.decode(full.encode())

    def signed(b: Built, *keys: SigningKey, provenance: bool = True) -> Built:
        p = codec.decode(b.encode())
        for k in keys:
            p = sign_packet(p, k, signing_time=SIGNED_AT, require_provenance=provenance)
        return Built(b.body, b.body_bytes, b.data, p.signatures)

    def packet(sigs: bytes, b: Built = full) -> Built:
        return Built(b.body, b.body_bytes, b.data, sigs)

    def vector(
        vid: str,
        desc: str,
        b: Built,
        expect: str | list[SigningKey],
        *,
        trust: Any,
        tags: list[str],
        k: int = 1,
        trust_text: str | None = None,
        mutation: tuple[str, str, str] | None = None,
    ) -> None:
        inp: dict[str, Any] = {
            "encoding": "cbor",
            "b64": base64.b64encode(b.encode()).decode(),
            "min_signers": k,
            "now": NOW,
        }
        if trust_text is not None:
            inp["trust_text"] = trust_text
        else:
            inp["trust"] = trust
        if isinstance(expect, list):
            expected = {
                "outcome": "valid",
                "packet_id": b.packet_id,
                "summary": summarize(b.body, signed=True),
                "signers": sorted(x.kid.hex() for x in expect),
            }
        else:
            expected = {"outcome": "invalid", "code": expect}
        s.add(
            vid,
            desc,
            op="verify",
            spec=spec_of(tags, "cbor"),
            inp=inp,
            expected=expected,
            tags=["verify", *tags],
            mutation=mutation,
            intermediate=signature_intermediates(b),
        )

    alice = store((ALICE, "alice"))
    one = signed(full, ALICE)
    assert one.signatures == sign_packet(decoded, ALICE, signing_time=SIGNED_AT).signatures

    # ---- k of n: 256 signers, co-signers the verifier does not trust
    many = cose_sign(payload, [signer(ALICE, payload)] * 256)
    vector(
        "v-valid-256-signers",
        "Alice's COSE_Signature 256 times: the most a verifier accepts; she counts once.",
        packet(many),
        [ALICE],
        trust=alice,
        tags=["valid", "limits", "multi-signer", "duplicate-signer"],
    )
    broken = [*signer(MALLORY, payload)[:2], bytes(64)]
    vector(
        "v-untrusted-cosigner-invalid",
        "Signed by alice (trusted, valid) and mallory (not trusted) whose signature is 64 zero "
        "bytes: every signature is checked, whoever signed, so the packet is refused.",
        packet(cose_sign(payload, [signer(ALICE, payload), broken])),
        "SIGNATURE_INVALID",
        trust=alice,
        tags=["bad-signature", "multi-signer", "untrusted"],
        mutation=("v-valid-extra-untrusted-signer", "set", "mallory's signature := 64 zeros"),
    )

    # ---- validity windows: both times, bounds included, fractions truncated
    def window(**times: str) -> dict[str, Any]:
        return store(trust_entry(ALICE.public_key, "alice", **times))

    vector(
        "v-key-not-yet-valid-at-signing",
        "Alice's trust entry starts on 2026-03-01: after the signing time (2026-01-01), before "
        "the verification time (2026-06-01). Both times must lie in the window.",
        one,
        "KEY_NOT_YET_VALID",
        trust=window(not_before="2026-03-01T00:00:00Z"),
        tags=["validity-window"],
    )
    vector(
        "v-valid-window-bounds",
        "Alice's window is exactly [signing time, verification time]: bounds are included.",
        one,
        [ALICE],
        trust=window(not_before="2026-01-01T00:00:00Z", not_after=NOW),
        tags=["valid", "validity-window"],
    )
    vector(
        "v-valid-window-fraction",
        "Alice's window starts at 2026-01-01T00:00:00.5Z, half a second after the signing time: "
        "fractions are truncated to whole seconds, so the signing time is inside.",
        one,
        [ALICE],
        trust=window(not_before="2026-01-01T00:00:00.5Z"),
        tags=["valid", "validity-window"],
    )

    # ---- the COSE structure around and inside each signer
    good = signer(ALICE, payload)
    vector(
        "v-malformed-tag-1",
        "The COSE_Sign array under tag 1 (epoch time) instead of tag 98.",
        packet(b"\xc1" + cose_sign(payload, [good], tagged=False)),
        "SIGNATURE_MALFORMED",
        trust=alice,
        tags=["malformed-cose", "tags"],
    )
    vector(
        "v-malformed-body-unprotected",
        "The body unprotected header is {4: h'01'} instead of the empty map.",
        packet(b"\xd8\x62" + enc([BODY_PROTECTED, {4: b"\x01"}, payload, [good]])),
        "SIGNATURE_MALFORMED",
        trust=alice,
        tags=["malformed-cose"],
    )
    for name, alg in (("array", [-8]), ("map", {1: -8})):
        vector(
            f"v-alg-{name}",
            f"Alice's protected header says alg {enc(alg).hex()} (an {name}, not the integer "
            "-8), signed over it.",
            packet(cose_sign(payload, [signer(ALICE, payload, protected(ALICE, alg=alg))])),
            "ALG_UNSUPPORTED",
            trust=alice,
            tags=["alg"],
        )
    x = ALICE.public_key.raw
    for vid, desc, over, code in (
        (
            "v-malformed-extra-label",
            "Alice's protected header has an extra label 99 (exactly 1, 4, 14, 15 allowed).",
            {"l99": 0},
            "SIGNATURE_MALFORMED",
        ),
        (
            "v-malformed-cwt-extra-claim",
            'Alice\'s label 15 is {6: signing time, 1: "issuer"} (only the claim 6 allowed).',
            {"l15": {6: SIGNED_AT, 1: "issuer"}},
            "SIGNATURE_MALFORMED",
        ),
        (
            "v-malformed-signing-time-2-53",
            "Alice's signing time is 2^53 (signing times lie in [0, 2^53)).",
            {"l15": {6: 2**53}},
            "SIGNATURE_MALFORMED",
        ),
        (
            "v-malformed-kccs-extra-claim",
            'Alice\'s label 14 is {8: {1: key}, 2: "subject"} (only the claim 8 allowed).',
            {"l14": {8: {1: {1: 1, -1: 6, -2: x}}, 2: "subject"}},
            "SIGNATURE_MALFORMED",
        ),
        (
            "v-signer-key-extra-param",
            "Alice's COSE_Key carries alg (3: -8) beside kty, crv and x.",
            {"l14": {8: {1: {1: 1, -1: 6, -2: x, 3: -8}}}},
            "KEY_MALFORMED",
        ),
    ):
        vector(
            vid,
            desc + " Signed over that header.",
            packet(cose_sign(payload, [signer(ALICE, payload, protected(ALICE, **over))])),
            code,
            trust=alice,
            tags=["malformed-cose"] if code == "SIGNATURE_MALFORMED" else ["key"],
        )

    # ---- torsion: a key outside the prime-order subgroup, an R with an order-8 component
    torsion_key = sodium.crypto_core_ed25519_add(x, TORSION)
    header = enc(
        {
            1: -8,
            4: hashlib.sha256(torsion_key).digest(),
            14: {8: {1: {1: 1, -1: 6, -2: torsion_key}}},
            15: {6: SIGNED_AT},
        }
    )
    vector(
        "v-signer-key-mixed-torsion",
        "A co-signer key A + T, alice's key plus a point of order 8: on the curve, not of small "
        "order, but outside the prime-order subgroup (KEY_MALFORMED, whoever signed).",
        packet(cose_sign(payload, [good, [header, {}, bytes(64)]])),
        "KEY_MALFORMED",
        trust=alice,
        tags=["key", "ed25519-edge"],
    )
    prot = protected(ALICE)
    message = enc(["Signature", BODY_PROTECTED, prot, b"", payload])
    r = int.from_bytes(hashlib.sha512(b"m2kt-conformance/mixed-torsion-r").digest(), "little") % L
    big_r = sodium.crypto_core_ed25519_add(
        sodium.crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little")), TORSION
    )
    k = int.from_bytes(hashlib.sha512(big_r + x + message).digest(), "little") % L
    s_scalar = (r + k * secret_scalar(ALICE)) % L
    vector(
        "v-signature-mixed-torsion-r",
        "Alice's signature with R = rB + T (T of order 8) and S = r + k·a: it satisfies the "
        "cofactored equation [8][S]B = [8]R + [8][k]A but not the cofactorless one a verifier "
        "must use ([S]B - [k]A = rB, not R).",
        packet(cose_sign(payload, [[prot, {}, big_r + s_scalar.to_bytes(32, "little")]])),
        "SIGNATURE_INVALID",
        trust=alice,
        tags=["bad-signature", "ed25519-edge"],
    )

    # ---- complete provenance (signing §8), each rule on the full packet
    def provenance(fn: Any) -> Built:
        return build(mutate(full_fields(), lambda f: fn(f["provenance"])), FULL_TENSORS)

    for vid, desc, fn, expect in (
        (
            "v-provenance-blank-u001c",
            "generator.name is U+001C (INFORMATION SEPARATOR FOUR): white space for Python's "
            "str.isspace, hence blank (ECMA-262's \\s disagrees).",
            lambda p: p["generator"].update(name="\u001c"),
            "PROVENANCE_INCOMPLETE",
        ),
        (
            "v-valid-provenance-u-feff",
            "generator.name is U+FEFF (ZERO WIDTH NO-BREAK SPACE): not white space for Python's "
            "str.isspace, so not blank (ECMA-262's \\s disagrees).",
            lambda p: p["generator"].update(name="\ufeff"),
            [ALICE],
        ),
        (
            "v-provenance-task-name-blank",
            "provenance.task.name is a space and a tab.",
            lambda p: p["task"].update(name=" \t"),
            "PROVENANCE_INCOMPLETE",
        ),
        (
            "v-provenance-parameters-empty",
            "provenance.parameters is empty.",
            lambda p: p.update(parameters={}),
            "PROVENANCE_INCOMPLETE",
        ),
        (
            "v-provenance-task-inputs-zero",
            "provenance.task_inputs_used is 0.",
            lambda p: p.update(task_inputs_used=0),
            "PROVENANCE_INCOMPLETE",
        ),
        (
            "v-provenance-concept-probes-zero",
            "The packet has concepts and provenance.concept_probes_used is 0.",
            lambda p: p.update(concept_probes_used=0),
            "PROVENANCE_INCOMPLETE",
        ),
        (
            "v-provenance-duplicate-parent",
            "provenance.parents lists one packet id twice.",
            lambda p: p.update(parents=["0" * 64, "0" * 64]),
            "PROVENANCE_INCOMPLETE",
        ),
    ):
        vector(
            vid,
            desc + " Signed by alice.",
            signed(provenance(fn), ALICE, provenance=False),
            expect,
            trust=alice,
            tags=["provenance"] + (["valid"] if isinstance(expect, list) else []),
        )

    # ---- the JSON trust store (signing §6.1): each rule once, on alice's signed packet
    entry = trust_entry(ALICE.public_key, "alice")
    xs = entry["x"]
    assert "-" in xs and "_" in xs  # alice's x spells differently in the standard alphabet
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(xs[-1])
    noncanonical = (
        xs[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1]
    )

    def with_entry(**change: Any) -> dict[str, Any]:
        e = {**entry, **change}
        return {"keys": [{k: v for k, v in e.items() if v is not None}]}

    for vid, desc, trust in (
        (
            "v-trust-store-extra-member",
            'The trust store has a member "comment" beside "keys".',
            {**alice, "comment": "x"},
        ),
        (
            "v-trust-store-entry-member",
            'Alice\'s entry has an unknown member "d".',
            with_entry(d="AAAA"),
        ),
        ("v-trust-store-kty", 'Alice\'s entry has kty "EC".', with_entry(kty="EC")),
        ("v-trust-store-alg", 'Alice\'s entry has alg "ES256".', with_entry(alg="ES256")),
        (
            "v-trust-store-blank-name",
            'Alice\'s entry has the name " " (blank).',
            with_entry(name=" "),
        ),
        (
            "v-trust-store-long-name",
            "Alice's entry has a name of 1025 characters (at most 1024).",
            with_entry(name="a" * 1025),
        ),
        (
            "v-trust-store-x-padded",
            "Alice's x with a trailing '=' (x is unpadded).",
            with_entry(x=xs + "="),
        ),
        (
            "v-trust-store-x-standard-alphabet",
            "Alice's x in the standard base64 alphabet ('+' and '/' for '-' and '_').",
            with_entry(x=xs.replace("-", "+").replace("_", "/")),
        ),
        (
            "v-trust-store-x-noncanonical",
            "Alice's x with the unused low bit of its last character set: it decodes to the same "
            "32 bytes, but is not their canonical base64url.",
            with_entry(x=noncanonical),
        ),
        (
            "v-trust-store-kid-mismatch",
            "Alice's entry has a kid that is not SHA-256 of x.",
            with_entry(kid="00" * 32),
        ),
        (
            "v-trust-store-time-offset",
            "Alice's not_after is 2027-01-01T00:00:00+00:00 (UTC, but not written with Z).",
            with_entry(not_after="2027-01-01T00:00:00+00:00"),
        ),
        (
            "v-trust-store-time-lowercase",
            "Alice's not_after is 2027-01-01t00:00:00z.",
            with_entry(not_after="2027-01-01t00:00:00z"),
        ),
        (
            "v-trust-store-february-30",
            "Alice's not_after is 2026-02-30T00:00:00Z (no such day).",
            with_entry(not_after="2026-02-30T00:00:00Z"),
        ),
        (
            "v-trust-store-leap-second",
            "Alice's not_after is 2026-12-31T23:59:60Z (a leap second).",
            with_entry(not_after="2026-12-31T23:59:60Z"),
        ),
        (
            "v-trust-store-year-0000",
            "Alice's not_before is 0000-01-01T00:00:00Z (years are 0001 to 9999).",
            with_entry(not_before="0000-01-01T00:00:00Z"),
        ),
        (
            "v-trust-store-window-reversed",
            "Alice's not_before (2027) is after her not_after (2025).",
            with_entry(not_before="2027-01-01T00:00:00Z", not_after="2025-01-01T00:00:00Z"),
        ),
        (
            "v-trust-store-conflicting-duplicate",
            "Alice's key listed twice, as alice and as alicia.",
            store((ALICE, "alice"), (ALICE, "alicia")),
        ),
    ):
        vector(vid, desc, one, "TRUST_STORE_MALFORMED", trust=trust, tags=["trust-store"])
    text = json.dumps(alice)
    assert text.count('"name": "alice"') == 1
    vector(
        "v-trust-store-duplicate-member",
        "The trust store as text (trust_text) whose entry names the member name twice, alice "
        "then mallory: JSON parsers disagree on which wins, so it is refused.",
        one,
        "TRUST_STORE_MALFORMED",
        trust=None,
        trust_text=text.replace('"name": "alice"', '"name": "alice", "name": "mallory"'),
        tags=["trust-store"],
    )
    vector(
        "v-valid-trust-text",
        "The trust store given as the text of its JSON document (trust_text), spaced and indented.",
        one,
        [ALICE],
        trust=None,
        trust_text=json.dumps(alice, indent=2) + "\n",
        tags=["valid", "trust-store"],
    )
