"""Signatures (spec/signing.md): COSE interop, tampering, trust policy and Ed25519 edge cases.

Keys are derived from fixed seeds and signing times are fixed, so every signature here is
reproducible (Ed25519 is deterministic).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cbor2
import nacl.signing
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import examples

from m2kt_ref.errors import REGISTRY, LimitError, M2ktError, SignatureError, UsageError
from m2kt_ref.packet import codec, keys, signing, trust
from m2kt_ref.packet.codec import Packet, canonical_cbor
from m2kt_ref.packet.demo import demo_packet
from m2kt_ref.packet.keys import PublicKey, SigningKey
from m2kt_ref.packet.signing import (
    BODY_PROTECTED,
    CONTENT_TYPE,
    describe_signers,
    sig_structure,
    sign_packet,
    verify_bytes,
    verify_packet,
)
from m2kt_ref.packet.trust import TrustedKey, TrustStore

VECTORS = Path(__file__).parent / "vectors" / "ed25519"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW = T0 + 86_400


def _load_make_vectors() -> Any:
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_make_vectors()


def key(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"m2kt test key " + name.encode()).digest())


ALICE, BOB, CAROL = key("alice"), key("bob"), key("carol")


def store(*pairs: tuple[SigningKey, str], **window: int) -> TrustStore:
    return TrustStore(TrustedKey(k.public_key, name, **window) for k, name in pairs)


TRUST_AB = store((ALICE, "alice"), (BOB, "bob"))


def codes(result: signing.VerificationResult) -> list[str]:
    return [e.code for e in result.errors]


def cose_parts(packet: Packet) -> list[Any]:
    """The COSE_Sign array as plain lists and dicts (cbor2 6 decodes tag contents immutably)."""
    value = cbor2.loads(packet.signatures)
    assert value.tag == 98
    return _lists(value.value)


def _lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    if isinstance(value, Mapping):  # cbor2 6 gives immutable maps inside tags
        return {k: _lists(v) for k, v in value.items()}
    return value


def with_cose(packet: Packet, parts: list[Any]) -> Packet:
    return packet.with_signatures(canonical_cbor(cbor2.CBORTag(98, parts)))


def signer_entry(
    k: SigningKey,
    payload: bytes,
    *,
    t: int = T0,
    header: dict[int, Any] | None = None,
) -> list[Any]:
    """A COSE_Signature by ``k``, its protected header optionally replaced (still signed)."""
    hdr = (
        header
        if header is not None
        else {
            1: -8,
            4: k.kid,
            14: {8: {1: k.public_key.cose_key()}},
            15: {6: t},
        }
    )
    protected = canonical_cbor(hdr)
    return [protected, {}, k.sign(sig_structure(protected, payload))]


def with_body(packet: Packet, mutate: Any) -> Packet:
    """The packet with its body changed by ``mutate(data)`` (tensor data kept, digests valid)."""
    data = copy.deepcopy(packet.body.to_data())
    mutate(data)
    body = codec.validate_body(data)
    return Packet(body, canonical_cbor(body.to_data()), packet.data)


@pytest.fixture(scope="module")
def packet() -> Packet:
    return demo_packet()


@pytest.fixture(scope="module")
def signed(packet: Packet) -> Packet:
    return sign_packet(sign_packet(packet, ALICE, signing_time=T0), BOB, signing_time=T0 + 1)


@pytest.fixture(scope="module")
def signed_blob(signed: Packet) -> bytes:
    return codec.encode(signed)


# --------------------------------------------------------------------------- round trip


def test_sign_then_verify_names_every_signer(signed: Packet, signed_blob: bytes) -> None:
    result = verify_bytes(signed_blob, TRUST_AB, now=NOW)
    assert result.valid, result.errors
    assert result.packet_id == signed.packet_id
    assert [s.name for s in result.signers] == ["alice", "bob"]
    assert result.counted == 2
    first = result.to_dict()["signers"][0]
    assert first["kid"] == ALICE.kid.hex() and first["alg"] == "EdDSA"
    assert first["signing_time"] == "2026-01-01T00:00:00Z"
    assert [c["check"] for c in first["checks"]] == [
        "structure",
        "algorithm",
        "key",
        "signature",
        "trust",
        "validity",
    ]
    assert all(c["passed"] for c in first["checks"])


def test_adding_a_signature_keeps_the_others(packet: Packet, signed: Packet) -> None:
    one = sign_packet(packet, ALICE, signing_time=T0)
    first = cose_parts(one)[3][0]
    assert cose_parts(signed)[3][0] == first  # byte-identical after bob signed
    assert verify_packet(one, store((ALICE, "alice")), now=NOW).valid
    assert verify_packet(signed, store((ALICE, "alice"), (BOB, "bob")), now=NOW).valid


def test_signed_packet_round_trips_both_encodings(signed: Packet, signed_blob: bytes) -> None:
    assert codec.encode(codec.decode(signed_blob)) == signed_blob
    text = codec.encode_json(signed)
    assert verify_bytes(text, TRUST_AB, now=NOW).valid
    assert codec.decode_json(text).signatures == signed.signatures


def test_payload_is_the_packet_id_and_body_protected_is_fixed(signed: Packet) -> None:
    parts = cose_parts(signed)
    assert parts[0] == BODY_PROTECTED == bytes.fromhex("a103781a") + CONTENT_TYPE.encode()
    assert parts[1] == {}
    assert parts[2].hex() == signed.packet_id
    assert cbor2.loads(parts[3][0][0]) == {
        1: -8,
        4: ALICE.kid,
        14: {8: {1: {1: 1, -1: 6, -2: ALICE.public_key.raw}}},
        15: {6: T0},
    }


def test_signing_twice_with_one_key_is_refused(signed: Packet) -> None:
    with pytest.raises(UsageError) as info:
        sign_packet(signed, ALICE)
    assert info.value.code == "USAGE"


# --------------------------------------------------------------------------- COSE interop


def _pycose_decode(item: bytes) -> Any:
    """pycose 1.1's ``CoseMessage.decode`` expects lists where cbor2 6 gives tuples inside a
    tag; hand its own parser the lists it expects (the verification is pycose's)."""
    from pycose.messages import SignMessage

    value = cbor2.loads(item)
    assert value.tag == SignMessage.cbor_tag
    return SignMessage.from_cose_obj(_lists(value.value), True)


def test_pycose_verifies_our_signatures(signed: Packet) -> None:
    from pycose.keys import OKPKey

    message = _pycose_decode(signed.signatures)
    assert message.payload.hex() == signed.packet_id
    assert len(message.signers) == 2
    for signer, k in zip(message.signers, (ALICE, BOB), strict=True):
        signer.key = OKPKey(crv="ED25519", x=k.public_key.raw)
        assert signer.verify_signature()
    # and a tampered payload fails under pycose too
    tampered = _pycose_decode(signed.signatures)
    tampered.payload = bytes(32)
    tampered.signers[0].key = OKPKey(crv="ED25519", x=ALICE.public_key.raw)
    assert not tampered.signers[0].verify_signature()


def test_we_verify_signatures_pycose_made(packet: Packet) -> None:
    from pycose.algorithms import EdDSA
    from pycose.headers import KID, Algorithm, ContentType
    from pycose.keys import OKPKey
    from pycose.messages import SignMessage
    from pycose.messages.signer import CoseSignature

    seed = hashlib.sha256(b"m2kt test key alice").digest()
    cose_key = OKPKey(crv="ED25519", d=seed, x=ALICE.public_key.raw)
    message = SignMessage(
        phdr={ContentType: CONTENT_TYPE},
        uhdr={},
        payload=bytes.fromhex(packet.packet_id),
        signers=[
            CoseSignature(
                # labels in ascending order, so pycose's encoding is the deterministic one
                phdr={
                    Algorithm: EdDSA,
                    KID: ALICE.kid,
                    14: {8: {1: {1: 1, -1: 6, -2: ALICE.public_key.raw}}},
                    15: {6: T0},
                },
                uhdr={},
                key=cose_key,
            )
        ],
    )
    made = packet.with_signatures(message.encode())
    result = verify_bytes(codec.encode(made), store((ALICE, "alice")), now=NOW)
    assert result.valid, result.errors
    assert result.signers[0].name == "alice"
    # the same header signed by us gives the same bytes (Ed25519 is deterministic)
    assert made.signatures == sign_packet(packet, ALICE, signing_time=T0).signatures


# --------------------------------------------------------------------------- tampering


def test_every_bit_flip_in_the_signatures_fails(signed: Packet, signed_blob: bytes) -> None:
    decoded = codec.decode(signed_blob)
    item = bytearray(signed.signatures)
    for bit in range(len(item) * 8):
        item[bit // 8] ^= 1 << (bit % 8)
        result = verify_packet(
            decoded.with_signatures(bytes(item)), TRUST_AB, now=NOW, check_tensors=False
        )
        item[bit // 8] ^= 1 << (bit % 8)
        assert not result.valid, f"flip of bit {bit} of the signatures item verified"


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_bit_flip_in_a_signed_packet_fails(signed_blob: bytes, data: st.DataObject) -> None:
    # Sample regions evenly: envelope and body, tensor data, signatures.
    sig_start = signed_blob.rindex(b"\x6asignatures")
    data_start = sig_start - len(codec.decode(signed_blob).data)
    region = data.draw(
        st.sampled_from([(0, data_start), (data_start, sig_start), (sig_start, len(signed_blob))])
    )
    bit = data.draw(st.integers(region[0] * 8, region[1] * 8 - 1))
    blob = bytearray(signed_blob)
    blob[bit // 8] ^= 1 << (bit % 8)
    result = verify_bytes(bytes(blob), TRUST_AB, now=NOW)
    assert not result.valid
    assert all(e.code in REGISTRY for e in result.errors)


def test_stripped_signatures_are_unsigned(signed: Packet) -> None:
    assert codes(verify_packet(signed.with_signatures(None), TRUST_AB, now=NOW)) == ["UNSIGNED"]


def test_dropping_one_signer_breaks_a_two_of_two_policy(signed: Packet) -> None:
    parts = cose_parts(signed)
    parts[3] = parts[3][:1]
    result = verify_packet(with_cose(signed, parts), TRUST_AB, min_signers=2, now=NOW)
    assert codes(result) == ["POLICY_UNMET"]


def test_signatures_of_another_packet_do_not_transfer(signed: Packet) -> None:
    other = sign_packet(demo_packet(n=6), ALICE, signing_time=T0)
    assert other.packet_id != signed.packet_id
    # the whole COSE_Sign moved over: its payload names the other packet
    moved = signed.with_signatures(other.signatures)
    assert codes(verify_packet(moved, TRUST_AB, now=NOW)) == ["PAYLOAD_MISMATCH"]
    # one COSE_Signature moved into this packet's COSE_Sign: it signs another payload
    parts = cose_parts(signed)
    parts[3][0] = cose_parts(other)[3][0]
    result = verify_packet(with_cose(signed, parts), TRUST_AB, now=NOW)
    assert codes(result) == ["SIGNATURE_INVALID"]
    assert result.signers[0].checks[-1].name == "signature"


def test_changed_body_fails_even_with_valid_digests(signed: Packet) -> None:
    def retitle(d: dict[str, Any]) -> None:
        d["header"]["title"] = "forged"

    forged = with_body(signed, retitle).with_signatures(signed.signatures)
    assert "PAYLOAD_MISMATCH" in codes(verify_packet(forged, TRUST_AB, now=NOW))


def test_changed_tensor_data_fails(signed: Packet) -> None:
    data = bytearray(signed.data)
    data[signed.body.tensors[0].offset] ^= 0x01
    forged = Packet(signed.body, signed.body_bytes, memoryview(bytes(data)), signed.signatures)
    assert codes(verify_packet(forged, TRUST_AB, now=NOW)) == ["TENSOR_DIGEST"]


# --------------------------------------------------------------------------- trust and policy


def test_untrusted_signer_does_not_count(signed: Packet) -> None:
    result = verify_packet(signed, store((CAROL, "carol")), now=NOW)
    assert codes(result) == ["SIGNER_UNTRUSTED", "SIGNER_UNTRUSTED", "POLICY_UNMET"]
    assert not any(s.to_dict()["trusted"] for s in result.signers)
    # an untrusted co-signer is harmless when the trusted ones meet the policy
    assert verify_packet(signed, store((ALICE, "alice")), now=NOW).valid
    assert codes(verify_packet(signed, store((ALICE, "alice")), min_signers=2, now=NOW)) == [
        "SIGNER_UNTRUSTED",
        "POLICY_UNMET",
    ]


def test_validity_windows(signed: Packet) -> None:
    expired = store((ALICE, "alice"), (BOB, "bob"), not_after=T0 + 100)
    result = verify_packet(signed, expired, now=NOW)
    assert codes(result) == ["KEY_EXPIRED", "KEY_EXPIRED", "POLICY_UNMET"]
    assert "verification time" in result.errors[0].message
    # signing time after the window closed fails even while "now" is inside it
    late = store((ALICE, "alice"), (BOB, "bob"), not_after=T0)
    result = verify_packet(signed, late, min_signers=2, now=T0)  # alice at T0, bob at T0 + 1
    assert codes(result) == ["KEY_EXPIRED", "POLICY_UNMET"]
    assert "signing time" in result.errors[0].message
    future = store((ALICE, "alice"), (BOB, "bob"), not_before=NOW + 10)
    assert codes(verify_packet(signed, future, now=NOW))[0] == "KEY_NOT_YET_VALID"
    inside = store((ALICE, "alice"), (BOB, "bob"), not_before=T0, not_after=NOW)
    assert verify_packet(signed, inside, now=NOW).valid


def test_wrong_algorithm_is_refused(packet: Packet) -> None:
    payload = bytes.fromhex(packet.packet_id)
    header = {1: -7, 4: ALICE.kid, 14: {8: {1: ALICE.public_key.cose_key()}}, 15: {6: T0}}
    parts = [BODY_PROTECTED, {}, payload, [signer_entry(ALICE, payload, header=header)]]
    result = verify_packet(with_cose(packet, parts), TRUST_AB, now=NOW)
    assert codes(result)[0] == "ALG_UNSUPPORTED"
    assert result.signers[0].checks[-1].name == "algorithm"
    header[1] = "EdDSA"  # a text algorithm name is not the registered integer either
    parts[3] = [signer_entry(ALICE, payload, header=header)]
    assert codes(verify_packet(with_cose(packet, parts), TRUST_AB, now=NOW))[0] == (
        "ALG_UNSUPPORTED"
    )


def test_duplicate_signer_counts_once(packet: Packet) -> None:
    payload = bytes.fromhex(packet.packet_id)
    parts = [
        BODY_PROTECTED,
        {},
        payload,
        [signer_entry(ALICE, payload, t=T0), signer_entry(ALICE, payload, t=T0 + 5)],
    ]
    doubled = with_cose(packet, parts)
    result = verify_packet(doubled, TRUST_AB, now=NOW)
    assert result.valid and result.counted == 1
    assert result.signers[1].duplicate_of == 0 and result.signers[1].passed
    assert codes(verify_packet(doubled, TRUST_AB, min_signers=2, now=NOW)) == ["POLICY_UNMET"]


def test_packet_safety_min_signers_raises_k(packet: Packet) -> None:
    def two(d: dict[str, Any]) -> None:
        d["safety"]["min_signers"] = 2

    strict = with_body(packet, two)
    one = sign_packet(strict, ALICE, signing_time=T0)
    result = verify_packet(one, TRUST_AB, now=NOW)
    assert result.required == 2 and codes(result) == ["POLICY_UNMET"]
    assert verify_packet(sign_packet(one, BOB, signing_time=T0), TRUST_AB, now=NOW).valid


def test_min_signers_below_one_is_a_usage_error(signed: Packet) -> None:
    with pytest.raises(UsageError):
        verify_packet(signed, TRUST_AB, min_signers=0)


# --------------------------------------------------------------------------- malformed COSE


def _mutations(packet: Packet) -> dict[str, bytes]:
    payload = bytes.fromhex(packet.packet_id)
    good = signer_entry(ALICE, payload)

    def item(parts: list[Any], tag: int | None = 98) -> bytes:
        return canonical_cbor(cbor2.CBORTag(tag, parts) if tag is not None else parts)

    wrong_kid = {1: -8, 4: BOB.kid, 14: {8: {1: ALICE.public_key.cose_key()}}, 15: {6: T0}}
    no_time = {1: -8, 4: ALICE.kid, 14: {8: {1: ALICE.public_key.cose_key()}}}
    float_time = {1: -8, 4: ALICE.kid, 14: {8: {1: ALICE.public_key.cose_key()}}, 15: {6: 1.5}}
    extra = {**cbor2.loads(good[0]), 33: "x"}
    return {
        "untagged": item([BODY_PROTECTED, {}, payload, [good]], tag=None),
        "other tag": item([BODY_PROTECTED, {}, payload, [good]], tag=18),
        "three items": item([BODY_PROTECTED, {}, payload]),
        "content type": item([canonical_cbor({3: "application/cbor"}), {}, payload, [good]]),
        "body unprotected": item([BODY_PROTECTED, {4: b"x"}, payload, [good]]),
        "detached": item([BODY_PROTECTED, {}, None, [good]]),
        "short payload": item([BODY_PROTECTED, {}, payload[:16], [good]]),
        "no signers": item([BODY_PROTECTED, {}, payload, []]),
        "signer unprotected": item([BODY_PROTECTED, {}, payload, [[good[0], {4: b"x"}, good[2]]]]),
        "kid mismatch": item(
            [BODY_PROTECTED, {}, payload, [signer_entry(ALICE, payload, header=wrong_kid)]]
        ),
        "no signing time": item(
            [BODY_PROTECTED, {}, payload, [signer_entry(ALICE, payload, header=no_time)]]
        ),
        "float signing time": item(
            [BODY_PROTECTED, {}, payload, [signer_entry(ALICE, payload, header=float_time)]]
        ),
        "extra label": item(
            [BODY_PROTECTED, {}, payload, [signer_entry(ALICE, payload, header=extra)]]
        ),
        # the same COSE_Sign with a non-minimal length for the payload (0x58 0x20 -> 0x59 0x0020)
        "non-deterministic": item([BODY_PROTECTED, {}, payload, [good]]).replace(
            b"\x58\x20" + payload, b"\x59\x00\x20" + payload, 1
        ),
    }


def test_malformed_cose_structures_are_refused(packet: Packet) -> None:
    for name, item in _mutations(packet).items():
        result = verify_packet(packet.with_signatures(item), TRUST_AB, now=NOW)
        assert codes(result)[:1] == ["SIGNATURE_MALFORMED"], name
        assert not result.valid


def test_too_many_signers_is_a_limit(packet: Packet) -> None:
    payload = bytes.fromhex(packet.packet_id)
    good = signer_entry(ALICE, payload)
    many = [BODY_PROTECTED, {}, payload, [good] * (signing.MAX_SIGNERS + 1)]
    result = verify_packet(with_cose(packet, many), TRUST_AB, now=NOW)
    assert codes(result) == ["LIMIT_EXCEEDED"]
    with pytest.raises(LimitError):
        describe_signers(with_cose(packet, many))


def test_signer_with_small_order_key_is_refused(packet: Packet) -> None:
    """The identity point as a public key: (R = rB, S = r) passes the cofactorless equation
    for every message. The key check must stop it before the signature is even tried."""
    payload = bytes.fromhex(packet.packet_id)
    identity = (1).to_bytes(32, "little")
    kid = hashlib.sha256(identity).digest()
    header = {1: -8, 4: kid, 14: {8: {1: {1: 1, -1: 6, -2: identity}}}, 15: {6: T0}}
    protected = canonical_cbor(header)
    r = 12345
    forged_sig = ref.encode(ref.mul(r, ref.BASE)) + r.to_bytes(32, "little")
    assert ref.cofactorless_accepts(identity, sig_structure(protected, payload), forged_sig)
    parts = [BODY_PROTECTED, {}, payload, [[protected, {}, forged_sig]]]
    evil_trust = TrustStore()  # not even trusted: a bad key fails the packet regardless
    result = verify_packet(with_cose(packet, parts), evil_trust, now=NOW)
    assert codes(result)[0] == "KEY_MALFORMED"


def test_signing_refuses_to_extend_a_broken_set(packet: Packet, signed: Packet) -> None:
    parts = cose_parts(signed)
    parts[3][0][2] = bytes(64)
    with pytest.raises(SignatureError) as info:
        sign_packet(with_cose(signed, parts), CAROL)
    assert info.value.code == "SIGNATURE_INVALID"
    other = sign_packet(demo_packet(n=6), ALICE, signing_time=T0)
    with pytest.raises(SignatureError) as info:
        sign_packet(packet.with_signatures(other.signatures), CAROL)
    assert info.value.code == "PAYLOAD_MISMATCH"


def test_describe_signers(packet: Packet, signed: Packet) -> None:
    assert describe_signers(packet) == []
    described = describe_signers(signed, store((BOB, "bob")))
    assert described == [
        {
            "index": 0,
            "kid": ALICE.kid.hex(),
            "name": None,
            "alg": "EdDSA",
            "signing_time": "2026-01-01T00:00:00Z",
        },
        {
            "index": 1,
            "kid": BOB.kid.hex(),
            "name": "bob",
            "alg": "EdDSA",
            "signing_time": "2026-01-01T00:00:01Z",
        },
    ]
    broken = _mutations(packet)["kid mismatch"]
    entry = describe_signers(packet.with_signatures(broken))[0]
    assert entry["error"]["code"] == "SIGNATURE_MALFORMED"
    with pytest.raises(SignatureError):
        describe_signers(packet.with_signatures(_mutations(packet)["untagged"]))


# --------------------------------------------------------------------------- provenance


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("generator", {"name": " ", "version": "1"}, "generator/name"),
        ("generator", {"name": "g", "version": ""}, "generator/version"),
        ("task", {"name": "", "options": {}}, "task/name"),
        ("parameters", {}, "parameters"),
        ("task_inputs_used", 0, "task_inputs_used"),
        ("concept_probes_used", 0, "concept_probes_used"),
        ("parents", ["ab" * 32, "ab" * 32], "parents"),
    ],
)
def test_incomplete_provenance_is_not_signed(
    packet: Packet, field: str, value: Any, path: str
) -> None:
    def change(d: dict[str, Any]) -> None:
        d["provenance"][field] = value

    bad = with_body(packet, change)
    with pytest.raises(SignatureError) as info:
        sign_packet(bad, ALICE)
    assert info.value.code == "PROVENANCE_INCOMPLETE"
    assert info.value.path == f"/body/provenance/{path}"
    # a verifier refuses it too, whoever signed it
    forced = sign_packet(bad, ALICE, signing_time=T0, require_provenance=False)
    assert codes(verify_packet(forced, TRUST_AB, now=NOW)) == ["PROVENANCE_INCOMPLETE"]


# --------------------------------------------------------------------------- keys and trust


def test_key_files(tmp_path: Path) -> None:
    secret, public = keys.write_key_pair(ALICE, tmp_path / "alice")
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(public).st_mode) == 0o644
    assert keys.load_signing_key(secret).kid == ALICE.kid
    assert keys.load_public_key(public) == ALICE.public_key
    assert cbor2.loads(public.read_bytes()) == {
        1: 1,
        2: ALICE.kid,
        3: -8,
        -1: 6,
        -2: ALICE.public_key.raw,
    }
    assert public.read_bytes() == canonical_cbor(cbor2.loads(public.read_bytes()))
    # a public file is not a secret key, and a secret whose x disagrees is refused
    with pytest.raises(SignatureError) as info:
        keys.load_signing_key(public)
    assert info.value.code == "KEY_MALFORMED"
    mixed = cbor2.loads(secret.read_bytes())
    mixed[-2] = BOB.public_key.raw
    (tmp_path / "mixed.key").write_bytes(canonical_cbor(mixed))
    with pytest.raises(SignatureError):
        keys.load_signing_key(tmp_path / "mixed.key")
    (tmp_path / "junk.pub").write_bytes(b"\xff\x00")
    with pytest.raises(SignatureError):
        keys.load_public_key(tmp_path / "junk.pub")


def test_trust_store_json(tmp_path: Path) -> None:
    doc = {
        "keys": [
            trust.trust_entry(ALICE.public_key, "alice", not_after="2027-01-01T00:00:00Z"),
            trust.trust_entry(BOB.public_key, "bob", not_before="2025-06-01T12:00:00.5Z"),
        ]
    }
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(doc))
    keys.write_key_pair(CAROL, tmp_path / "carol")
    loaded = TrustStore.load([path, tmp_path / "carol.pub", tmp_path / "carol.pub"])
    assert len(loaded) == 3
    alice = loaded.get(ALICE.kid)
    assert alice is not None and alice.name == "alice" and alice.not_after == 1798761600
    assert loaded.get(CAROL.kid).name == "carol"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda e: e.update(extra=1), "TRUST_STORE_MALFORMED"),
        (lambda e: e.update(x=e["x"] + "A"), "TRUST_STORE_MALFORMED"),
        (lambda e: e.update(crv="X25519"), "TRUST_STORE_MALFORMED"),
        (lambda e: e.update(name=""), "TRUST_STORE_MALFORMED"),
        (lambda e: e.update(kid="00" * 32), "TRUST_STORE_MALFORMED"),
        (lambda e: e.update(not_after="2027-01-01"), "TRUST_STORE_MALFORMED"),
        (lambda e: e.update(not_after="2027-01-01T00:00:00Z\n"), "TRUST_STORE_MALFORMED"),
        (
            lambda e: e.update(not_before="2028-01-01T00:00:00Z", not_after="2027-01-01T00:00:00Z"),
            "TRUST_STORE_MALFORMED",
        ),
        (lambda e: (e.pop("kid"), e.update(x="AQ" + "A" * 41)), "KEY_MALFORMED"),
    ],
)
def test_trust_store_json_rejects(change: Any, code: str) -> None:
    entry = trust.trust_entry(ALICE.public_key, "alice")
    change(entry)
    with pytest.raises(SignatureError) as info:
        trust.trusted_keys_from_json({"keys": [entry]})
    assert info.value.code == code


def test_trust_store_conflicting_duplicate(tmp_path: Path) -> None:
    keys.write_key_pair(ALICE, tmp_path / "alice")
    (tmp_path / "t.json").write_text(
        json.dumps({"keys": [trust.trust_entry(ALICE.public_key, "someone-else")]})
    )
    with pytest.raises(SignatureError) as info:
        TrustStore.load([tmp_path / "alice.pub", tmp_path / "t.json"])
    assert info.value.code == "TRUST_STORE_MALFORMED"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SignatureError):
        TrustStore.load([tmp_path / "bad.json"])


# --------------------------------------------------------------------------- Ed25519 edge cases


def _wycheproof_cases(name: str) -> list[tuple[str, bytes, bytes, bytes, str]]:
    doc = json.loads((VECTORS / name).read_text())
    out = []
    for group in doc["testGroups"]:
        pk = bytes.fromhex(group["publicKey"]["pk"])
        for t in group["tests"]:
            out.append(
                (
                    f"{name}#{t['tcId']}",
                    pk,
                    bytes.fromhex(t["msg"]),
                    bytes.fromhex(t["sig"]),
                    t["result"],
                )
            )
    return out


CASES = _wycheproof_cases("wycheproof_ed25519_excerpt.json") + _wycheproof_cases(
    "m2kt_ed25519_edge.json"
)


def _strict_verify(pk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        PublicKey(pk).verify(msg, sig)
    except SignatureError as exc:
        assert exc.code in {"KEY_MALFORMED", "SIGNATURE_INVALID"}
        return False
    return True


@pytest.mark.parametrize(("case", "pk", "msg", "sig", "expected"), CASES, ids=[c[0] for c in CASES])
def test_ed25519_vectors(case: str, pk: bytes, msg: bytes, sig: bytes, expected: str) -> None:
    assert _strict_verify(pk, msg, sig) == (expected == "valid")
    if expected == "valid":  # valid ones verify under two other implementations too
        nacl.signing.VerifyKey(pk).verify(msg, sig)
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)


def test_edge_vectors_pass_the_naive_equation_but_fail_strict_checks() -> None:
    """The premise of each custom vector: only the named check stops it."""
    for case, pk, msg, sig, expected in _wycheproof_cases("m2kt_ed25519_edge.json"):
        assert ref.cofactorless_accepts(pk, msg, sig), case
        if expected == "invalid":
            # the explicit checks name a reason without asking libsodium
            assert keys.public_key_problem(pk) or keys.signature_problem(sig), case


def test_explicit_checks_do_not_rely_on_libsodium() -> None:
    sig = ALICE.sign(b"m")
    s = int.from_bytes(sig[32:], "little")
    assert keys.signature_problem(sig) is None
    assert "S >= L" in (
        keys.signature_problem(sig[:32] + (s + keys.L).to_bytes(32, "little")) or ""
    )
    identity_r = (1).to_bytes(32, "little") + sig[32:]
    assert "small order" in (keys.signature_problem(identity_r) or "")
    for enc in ref.small_order_encodings():
        assert keys.is_small_order(enc)
        with pytest.raises(SignatureError) as info:
            PublicKey(enc)
        assert info.value.code == "KEY_MALFORMED"


def test_small_order_list_matches_the_curve() -> None:
    masked = {e[:31] + bytes([e[31] & 0x7F]) for e in ref.small_order_encodings()}
    assert masked == keys.SMALL_ORDER_ENCODINGS


def test_custom_vectors_are_what_the_generator_makes() -> None:
    committed = (VECTORS / "m2kt_ed25519_edge.json").read_text()
    assert committed == ref.render(), "run python tests/vectors/ed25519/make_vectors.py"


def test_wycheproof_excerpt_is_consistent() -> None:
    """Guards the transcription: tcId 63 is tcId 3 with S + L, and tcIds 1-9 verify."""
    cases = {c[0].split("#")[1]: c for c in _wycheproof_cases("wycheproof_ed25519_excerpt.json")}
    s3 = int.from_bytes(cases["3"][3][32:], "little")
    assert cases["63"][3] == cases["3"][3][:32] + (s3 + keys.L).to_bytes(32, "little")
    assert cases["63"][2] == cases["3"][2]
    try:
        Ed25519PublicKey.from_public_bytes(cases["63"][1]).verify(cases["63"][3], cases["63"][2])
        openssl_accepts = True
    except InvalidSignature:
        openssl_accepts = False
    assert not openssl_accepts


def test_key_constructors_check_lengths() -> None:
    with pytest.raises(SignatureError):
        SigningKey(b"short")
    with pytest.raises(SignatureError):
        PublicKey(bytes(31))
    non_canonical = (keys.P + 2).to_bytes(32, "little")  # y = 2 + p
    assert keys.public_key_problem(non_canonical) == "public key encoding is not canonical (y >= p)"


# --------------------------------------------------------------------------- packaging


def test_signing_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import m2kt_ref.packet.signing, m2kt_ref.packet.keys, m2kt_ref.packet.trust\n"
        "import m2kt_ref.cli.sign_cmds\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_signature_code_is_exercised() -> None:
    source = Path(__file__).read_text() + (Path(__file__).parent / "test_sign_cli.py").read_text()
    for code in SignatureError.codes:
        assert f'"{code}"' in source, code
    assert all(isinstance(e, M2ktError) for e in [SignatureError("UNSIGNED", "x")])


# --------------------------------------------------------------------------- the spec


SPEC = Path(__file__).parent.parent / "spec" / "signing.md"


def test_spec_example_is_reproduced() -> None:
    """spec/signing.md §10 shows bytes this implementation makes (whitespace ignored)."""
    spec = "".join(SPEC.read_text().split())
    k = SigningKey(bytes(range(32)))
    payload = hashlib.sha256(b"m2kt signing example").digest()
    protected = signing._signer_protected(k, 1_767_225_600)
    tbs = sig_structure(protected, payload)
    signature = k.sign(tbs)
    item = canonical_cbor(
        cbor2.CBORTag(98, [BODY_PROTECTED, {}, payload, [[protected, {}, signature]]])
    )
    for name, value in [
        ("x", k.public_key.raw),
        ("kid", k.kid),
        ("payload", payload),
        ("body protected", BODY_PROTECTED),
        ("protected", protected),
        ("to be signed", tbs),
        ("signature", signature),
        ("item", item),
    ]:
        assert value.hex() in spec or value.hex().upper() in spec, name
    # and the example verifies as a packet's signatures would
    parts = cbor2.loads(item).value
    PublicKey(k.public_key.raw).verify(sig_structure(parts[3][0][0], parts[2]), parts[3][0][2])


def test_spec_trust_store_example_parses() -> None:
    text = SPEC.read_text()
    start = text.index('{"keys": [')
    doc = json.loads(text[start : text.index("]}", start) + 2])
    (entry,) = trust.trusted_keys_from_json(doc)
    assert entry.public_key == SigningKey(bytes(range(32))).public_key
    assert (entry.not_before, entry.not_after) == (T0, 1_798_761_600)


def test_spec_error_table_matches_the_registry() -> None:
    text = SPEC.read_text()
    section = text[text.index("## 9. Error codes") : text.index("## 10.")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {line.split("`")[1] for line in rows}
    assert table == set(SignatureError.codes)
