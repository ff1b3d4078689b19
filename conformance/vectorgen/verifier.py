"""Verifier vectors: signed packets, trust stores and k-of-n policies (spec/signing.md).

Each vector signs the full packet (or a variant of it) and states the trust store, k and the
verification time; the keys, trust stores and hand-written COSE items come from :mod:`cose`.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .common import FULL_TENSORS, full_fields
from .cose import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    NOW,
    SIGNED_AT,
    L,
    cose_sign,
    protected,
    signature_intermediates,
    signer,
    spec_of,
    store,
)
from .packets import Bases, Built, build, json_form, mutate
from .rawcbor import Pairs, enc
from .reference import SigningKey, codec, sign_packet, summarize, trust_entry
from .suite import Suite


def add_vectors(s: Suite, bases: Bases) -> None:
    """Valid signed packets, then stripping and substitution, trust and policy, bad
    signatures, algorithm and COSE structure, provenance and the request; last, two reader
    vectors that need a signed packet."""
    full = bases.full
    payload = bytes.fromhex(full.packet_id)
    decoded = codec.decode(full.encode())

    def signed_by(*keys: SigningKey, base: Any = None) -> bytes:
        p = base if base is not None else decoded
        for k in keys:
            p = sign_packet(p, k, signing_time=SIGNED_AT)
        assert p.signatures is not None
        return p.signatures

    def packet(sigs: bytes | None, b: Built = full) -> Built:
        return Built(b.body, b.body_bytes, b.data, sigs)

    def vector(
        vid: str,
        desc: str,
        b: Built,
        expect: str | list[SigningKey],
        *,
        trust: dict[str, Any],
        k: int = 1,
        tags: list[str],
        spec: list[str] | None = None,
        encoding: str = "cbor",
        mutation: tuple[str, str, str] | None = None,
        limits: dict[str, int] | None = None,
    ) -> None:
        raw = b.encode() if encoding == "cbor" else json_form(b)
        inp: dict[str, Any] = {
            "encoding": encoding,
            "b64": base64.b64encode(raw).decode(),
            "trust": trust,
            "min_signers": k,
            "now": NOW,
        }
        if limits:
            inp["limits"] = limits
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
            spec=spec or spec_of(tags, encoding),
            inp=inp,
            expected=expected,
            tags=["verify", *tags],
            mutation=mutation,
            intermediate=signature_intermediates(b),
        )

    trust_all = store((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"))
    one = packet(signed_by(ALICE))
    assert one.encode() == codec.encode(decoded.with_signatures(one.signatures))
    two = packet(signed_by(ALICE, BOB))
    three = packet(signed_by(ALICE, BOB, MALLORY))

    # ---- valid
    vector(
        "v-valid-one-signer",
        "Signed by alice, who is trusted; k = 1.",
        one,
        [ALICE],
        trust=store((ALICE, "alice")),
        tags=["valid"],
    )
    vector(
        "v-valid-two-of-three",
        "Signed by alice and bob; the trust store lists alice, bob and carol; k = 2.",
        two,
        [ALICE, BOB],
        trust=trust_all,
        k=2,
        tags=["valid", "multi-signer", "k-of-n"],
    )
    vector(
        "v-valid-extra-untrusted-signer",
        "Signed by alice, bob and mallory; only alice is trusted; k = 1: an extra untrusted "
        "signer does not invalidate a packet whose policy is met.",
        three,
        [ALICE],
        trust=store((ALICE, "alice")),
        tags=["valid", "multi-signer"],
    )
    vector(
        "v-valid-window",
        "Signed by alice, trusted from 2025-01-01 to 2027-01-01 (signing and verification "
        "times inside the window).",
        one,
        [ALICE],
        trust=store(
            trust_entry(
                ALICE.public_key,
                "alice",
                not_before="2025-01-01T00:00:00Z",
                not_after="2027-01-01T00:00:00Z",
            )
        ),
        tags=["valid", "validity-window"],
    )
    vector(
        "v-valid-json-form",
        "A packet signed by alice and bob, in the JSON form.",
        two,
        [ALICE, BOB],
        trust=trust_all,
        k=2,
        encoding="json",
        tags=["valid", "json-form", "multi-signer"],
    )
    vector(
        "v-valid-trusted-by-kid-twice",
        "The trust store lists alice twice with identical attributes (allowed).",
        one,
        [ALICE],
        trust=store((ALICE, "alice"), (ALICE, "alice")),
        tags=["valid", "trust-store"],
    )

    # ---- missing, stripped, substituted
    vector(
        "v-unsigned",
        "An unsigned packet under a policy that needs one signer.",
        packet(None),
        "UNSIGNED",
        trust=trust_all,
        tags=["unsigned", "stripping"],
        mutation=("full", "strip", "no signatures entry"),
    )
    vector(
        "v-stripped-signer",
        "Signed by alice and bob, then bob's COSE_Signature removed; k = 2.",
        packet(signed_by(ALICE)),
        "POLICY_UNMET",
        trust=trust_all,
        k=2,
        tags=["stripping", "k-of-n"],
        mutation=("v-valid-two-of-three", "strip", "drop the second COSE_Signature"),
    )
    other = build(
        mutate(full_fields(), lambda f: f["header"].update(title="another")), FULL_TENSORS
    )
    vector(
        "v-substituted-signatures",
        "Alice's valid signatures item taken from another packet (another title) and attached "
        "to this one.",
        packet(signed_by(ALICE, base=codec.decode(other.encode()))),
        "PAYLOAD_MISMATCH",
        trust=trust_all,
        tags=["substitution"],
        mutation=("full", "substitute", "signatures of a packet titled 'another'"),
    )
    vector(
        "v-body-modified-after-signing",
        "Signed by alice, then the body changed (the title): the signatures cover the old id.",
        packet(one.signatures, other),
        "PAYLOAD_MISMATCH",
        trust=trust_all,
        tags=["substitution", "tamper"],
        mutation=("v-valid-one-signer", "tamper", "header.title := 'another'"),
    )
    forged_payload = bytes.fromhex(other.packet_id)
    forged = cose_sign(forged_payload, [signer(ALICE, payload)])
    vector(
        "v-payload-rewritten",
        "The body changed and the COSE payload rewritten to the new packet id, keeping "
        "alice's signature over the old one.",
        packet(forged, other),
        "SIGNATURE_INVALID",
        trust=trust_all,
        tags=["substitution", "tamper", "bad-signature"],
        mutation=("v-valid-one-signer", "tamper", "title and payload changed"),
    )

    # ---- trust and policy
    vector(
        "v-untrusted-signer",
        "Signed by mallory, who is not in the trust store.",
        packet(signed_by(MALLORY)),
        "SIGNER_UNTRUSTED",
        trust=store((ALICE, "alice")),
        tags=["untrusted"],
    )
    vector(
        "v-empty-trust-store",
        "Signed by alice; the trust store is empty.",
        one,
        "SIGNER_UNTRUSTED",
        trust={"keys": []},
        tags=["untrusted"],
    )
    vector(
        "v-policy-unmet",
        "Signed by alice only; alice and bob trusted; k = 2.",
        one,
        "POLICY_UNMET",
        trust=trust_all,
        k=2,
        tags=["k-of-n"],
    )
    dup = cose_sign(payload, [signer(ALICE, payload), signer(ALICE, payload)])
    vector(
        "v-duplicate-signer",
        "Alice's COSE_Signature appears twice; k = 2: one key counts once.",
        packet(dup),
        "POLICY_UNMET",
        trust=trust_all,
        k=2,
        tags=["k-of-n", "multi-signer", "duplicate-signer"],
        mutation=("v-valid-one-signer", "duplicate", "COSE_Signature repeated"),
    )
    strict = build(mutate(full_fields(), lambda f: f["safety"].update(min_signers=2)), FULL_TENSORS)
    vector(
        "v-packet-min-signers",
        "The packet's safety.min_signers is 2 and only alice signed; the verifier's k = 1 is "
        "raised to 2 by the packet.",
        packet(signed_by(ALICE, base=codec.decode(strict.encode())), strict),
        "POLICY_UNMET",
        trust=trust_all,
        tags=["k-of-n"],
    )
    vector(
        "v-key-expired",
        "Alice's trust entry expired on 2026-03-01; verification time 2026-06-01.",
        one,
        "KEY_EXPIRED",
        trust=store(trust_entry(ALICE.public_key, "alice", not_after="2026-03-01T00:00:00Z")),
        tags=["validity-window", "expired"],
    )
    vector(
        "v-key-expired-before-signing",
        "Alice's trust entry expired on 2025-12-01, before the signing time 2026-01-01.",
        one,
        "KEY_EXPIRED",
        trust=store(trust_entry(ALICE.public_key, "alice", not_after="2025-12-01T00:00:00Z")),
        tags=["validity-window", "expired"],
    )
    vector(
        "v-key-not-yet-valid",
        "Alice's trust entry starts on 2026-09-01, after the verification time.",
        one,
        "KEY_NOT_YET_VALID",
        trust=store(trust_entry(ALICE.public_key, "alice", not_before="2026-09-01T00:00:00Z")),
        tags=["validity-window"],
    )

    # ---- bad signatures
    sigs = bytearray(one.signatures)
    sigs[-1] ^= 0x01
    vector(
        "v-signature-bit-flip",
        "The last bit of alice's signature flipped.",
        packet(bytes(sigs)),
        "SIGNATURE_INVALID",
        trust=trust_all,
        tags=["bad-signature"],
        mutation=("v-valid-one-signer", "flip", "last byte of the signature ^= 01"),
    )
    vector(
        "v-signature-by-other-key",
        "A header naming alice (kid and key) over a signature made with bob's key.",
        packet(cose_sign(payload, [signer(ALICE, payload, by=BOB)])),
        "SIGNATURE_INVALID",
        trust=trust_all,
        tags=["bad-signature"],
    )
    vector(
        "v-second-signature-invalid",
        "Alice's signature is good, bob's is bit-flipped; k = 1: a bad signature makes the "
        "packet invalid even when the policy is met by others.",
        packet(
            cose_sign(
                payload,
                [signer(ALICE, payload), [*signer(BOB, payload)[:2], bytes(64)]],
            )
        ),
        "SIGNATURE_INVALID",
        trust=trust_all,
        tags=["bad-signature", "multi-signer"],
    )
    good = signer(ALICE, payload)
    s_big = good[2][:32] + (int.from_bytes(good[2][32:], "little") + L).to_bytes(32, "little")
    vector(
        "v-signature-noncanonical-s",
        "Alice's signature with S replaced by S + L (same value mod L, not canonical).",
        packet(cose_sign(payload, [[good[0], {}, s_big]])),
        "SIGNATURE_INVALID",
        trust=trust_all,
        tags=["bad-signature", "ed25519-edge"],
    )
    small_order = bytes.fromhex("0100000000000000000000000000000000000000000000000000000000000000")
    vector(
        "v-signature-small-order-r",
        "A signature whose R is the identity point (small order) and S = 0.",
        packet(cose_sign(payload, [[good[0], {}, small_order + bytes(32)]])),
        "SIGNATURE_INVALID",
        trust=trust_all,
        tags=["bad-signature", "ed25519-edge"],
    )
    bad_key_prot = enc(
        {
            1: -8,
            4: hashlib.sha256(small_order).digest(),
            14: {8: {1: {1: 1, -1: 6, -2: small_order}}},
            15: {6: SIGNED_AT},
        }
    )
    vector(
        "v-signer-key-small-order",
        "A signer key that is the identity point (small order).",
        packet(cose_sign(payload, [[bad_key_prot, {}, bytes(64)]])),
        "KEY_MALFORMED",
        trust=trust_all,
        tags=["key"],
    )

    # ---- algorithm and structure
    vector(
        "v-alg-es256",
        "Alice's protected header says alg -7 (ES256); the signature is Ed25519 over it.",
        packet(cose_sign(payload, [signer(ALICE, payload, protected(ALICE, alg=-7))])),
        "ALG_UNSUPPORTED",
        trust=trust_all,
        tags=["alg"],
    )
    vector(
        "v-alg-text",
        'Alice\'s protected header says alg "EdDSA" (a text string, not -8).',
        packet(cose_sign(payload, [signer(ALICE, payload, protected(ALICE, alg="EdDSA"))])),
        "ALG_UNSUPPORTED",
        trust=trust_all,
        tags=["alg"],
    )
    malformed: list[tuple[str, str, bytes]] = [
        (
            "untagged",
            "The COSE_Sign without tag 98.",
            cose_sign(payload, [signer(ALICE, payload)], tagged=False),
        ),
        (
            "detached-payload",
            "The COSE payload is nil (detached).",
            cose_sign(None, [signer(ALICE, payload)]),
        ),
        (
            "content-type",
            "The body protected header's content type is application/cbor.",
            cose_sign(
                payload, [signer(ALICE, payload)], body_protected=enc({3: "application/cbor"})
            ),
        ),
        ("no-signers", "The COSE_Sign holds no COSE_Signature.", cose_sign(payload, [])),
        (
            "no-alg",
            "Alice's protected header lacks alg.",
            cose_sign(payload, [signer(ALICE, payload, protected(ALICE, l1=None))]),
        ),
        (
            "kid-mismatch",
            "Alice's kid is not the SHA-256 of the key in her header.",
            cose_sign(payload, [signer(ALICE, payload, protected(ALICE, l4=bytes(32)))]),
        ),
        (
            "unsorted-header",
            "Alice's protected header with its labels in descending order (not deterministic).",
            cose_sign(
                payload,
                [
                    signer(
                        ALICE,
                        payload,
                        enc(
                            Pairs(
                                (
                                    (15, {6: SIGNED_AT}),
                                    (14, {8: {1: {1: 1, -1: 6, -2: ALICE.public_key.raw}}}),
                                    (4, ALICE.kid),
                                    (1, -8),
                                )
                            )
                        ),
                    )
                ],
            ),
        ),
        (
            "unprotected-header",
            "Alice's unprotected header is not empty ({4: kid}).",
            cose_sign(
                payload, [[*signer(ALICE, payload)[:1], {4: ALICE.kid}, signer(ALICE, payload)[2]]]
            ),
        ),
        (
            "short-payload",
            "The COSE payload is 31 bytes.",
            cose_sign(payload[:31], [signer(ALICE, payload[:31])]),
        ),
    ]
    for name, desc, item in malformed:
        vector(
            f"v-malformed-{name}",
            desc,
            packet(item),
            "SIGNATURE_MALFORMED",
            trust=trust_all,
            tags=["malformed-cose"],
        )
    vector(
        "v-too-many-signers",
        "257 (empty) COSE_Signatures, above the 256 a verifier accepts.",
        packet(cose_sign(payload, [[b"", {}, b""]] * 257)),
        "LIMIT_EXCEEDED",
        trust=trust_all,
        tags=["limits"],
    )
    vector(
        "v-limit-signature-bytes",
        "Alice's signatures item under the limit max_signature_bytes = 64.",
        one,
        "LIMIT_EXCEEDED",
        trust=trust_all,
        tags=["limits", "per-vector-limits"],
        limits={"max_signature_bytes": 64},
    )

    # ---- provenance, trust store, request
    minimal = bases.minimal
    vector(
        "v-provenance-incomplete",
        "The minimal packet (no task inputs, no parameters) signed by alice: a verifier refuses "
        "signed packets whose provenance is incomplete.",
        packet(
            sign_packet(
                codec.decode(minimal.encode()),
                ALICE,
                signing_time=SIGNED_AT,
                require_provenance=False,
            ).signatures,
            minimal,
        ),
        "PROVENANCE_INCOMPLETE",
        trust=trust_all,
        tags=["provenance"],
    )
    vector(
        "v-trust-store-malformed",
        "The trust store's keys member is a string.",
        one,
        "TRUST_STORE_MALFORMED",
        trust={"keys": "alice"},
        tags=["trust-store"],
    )
    entry = trust_entry(ALICE.public_key, "alice")
    entry["x"] = base64.urlsafe_b64encode(small_order).rstrip(b"=").decode()
    entry.pop("kid")
    vector(
        "v-trust-store-key-malformed",
        "The trust store lists a small-order point as a key.",
        one,
        "KEY_MALFORMED",
        trust={"keys": [entry]},
        tags=["trust-store", "key"],
    )
    vector(
        "v-usage-min-signers-zero",
        "The request asks for k = 0 signers.",
        one,
        "USAGE",
        trust=trust_all,
        k=0,
        tags=["usage"],
    )
    flipped = bytearray(full.data)
    flipped[0] ^= 0x01
    vector(
        "v-tensor-tampered",
        "Signed by alice, then one bit of the tensor data flipped: the signature still covers "
        "the body, whose digest no longer matches.",
        Built(full.body, full.body_bytes, bytes(flipped), one.signatures),
        "TENSOR_DIGEST",
        trust=trust_all,
        tags=["tamper"],
        mutation=("v-valid-one-signer", "flip", "first data byte ^= 01"),
    )
    assert one.signatures[:3] == b"\xd8\x62\x84"
    wide = b"\xd8\x62\x98\x04" + one.signatures[3:]
    vector(
        "v-malformed-noncanonical-item",
        "Alice's signatures entry with its array head written non-minimally (0x98 0x04): the "
        "verifier requires the deterministic encoding.",
        packet(wide),
        "SIGNATURE_MALFORMED",
        trust=trust_all,
        tags=["malformed-cose", "non-canonical"],
    )
    s.valid(
        "r-valid-signatures-noncanonical",
        "A signatures entry that is well-formed but not deterministically encoded: a reader "
        "only checks that the entry is one well-formed CBOR item.",
        packet(wide),
        spec=["envelope"],
        tags=["signatures-item"],
    )
    # the reader profile must accept a well-formed signatures entry it does not check
    s.valid(
        "r-valid-signed",
        "A packet signed by alice and bob: a reader decodes it (signed: true) without "
        "checking the signatures.",
        two,
        spec=["envelope"],
        tags=["signatures-item", "multi-signer"],
    )
