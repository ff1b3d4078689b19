"""Packet signatures (spec/signing.md): COSE_Sign (RFC 9052) with EdDSA over Ed25519.

The COSE payload is the 32-byte packet id (SHA-256 of the canonical body bytes), attached. The body
binds every tensor through its SHA-256 digest, so one signature covers the whole packet, and a
verifier hashes the tensors on all cores. The COSE_Sign item travels as the envelope's last entry,
``"signatures"``, so a signed packet is one file, and any COSE library can check it alone::

    98([ h'A1 03 78 1A "application/m2kt-packet-id"',   ; body protected: content type
         {},                                              ; body unprotected: empty
         h'<32-byte packet id>',                          ; payload
         [ [ h'<protected: {1: -8, 4: kid, 14: kccs, 15: {6: signing time}}>',
             {},                                          ; signer unprotected: empty
             h'<64-byte Ed25519 signature>' ], ... ] ])

Public API: :func:`sign_packet`, :func:`verify_packet`, :func:`verify_bytes`,
:func:`verify_file`, :func:`describe_signers`, :func:`provenance_problems`,
:func:`check_provenance`; results are :class:`VerificationResult` and :class:`SignerResult`.
Keys live in :mod:`m2kt_ref.packet.keys`, trust stores in :mod:`m2kt_ref.packet.trust`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2

from m2kt_ref.errors import LimitError, M2ktError, SignatureError, UsageError
from m2kt_ref.packet import codec
from m2kt_ref.packet.codec import Packet, canonical_cbor, decode_strict_cbor
from m2kt_ref.packet.files import read_bytes
from m2kt_ref.packet.keys import ALG_EDDSA, CRV, KTY, PublicKey, SigningKey, X
from m2kt_ref.packet.limits import DEFAULT_LIMITS, Limits
from m2kt_ref.packet.model import PacketBody
from m2kt_ref.packet.rules import iter_tensor_data_errors
from m2kt_ref.packet.trust import TrustedKey, TrustStore, format_time

__all__ = [
    "BODY_PROTECTED",
    "CONTENT_TYPE",
    "COSE_SIGN_TAG",
    "MAX_SIGNERS",
    "MAX_SIGNING_TIME",
    "PARALLEL_HASH_BYTES",
    "Check",
    "SignerResult",
    "VerificationResult",
    "check_provenance",
    "describe_signers",
    "packet_digest",
    "provenance_problems",
    "sig_structure",
    "sign_packet",
    "verify_bytes",
    "verify_file",
    "verify_packet",
]

#: CBOR tag of COSE_Sign_Tagged (RFC 9052 §2).
COSE_SIGN_TAG = 98
#: Content type of the COSE payload (RFC 9052 §3.1, label 3).
CONTENT_TYPE = "application/m2kt-packet-id"
#: COSE header labels: alg, content type, kid (RFC 9052 §3.1), kccs (RFC 9528 §10.6), CWT
#: Claims (RFC 9597).
H_ALG, H_CTY, H_KID, H_KCCS, H_CWT_CLAIMS = 1, 3, 4, 14, 15
#: CWT claim keys (RFC 8392 §4): iat (issued at = signing time) and cnf (RFC 8747), whose
#: member 1 is a COSE_Key.
CLAIM_IAT, CLAIM_CNF, CNF_COSE_KEY = 6, 8, 1
#: The body protected header, identical in every m2kt COSE_Sign: ``{3: CONTENT_TYPE}``.
BODY_PROTECTED = canonical_cbor({H_CTY: CONTENT_TYPE})
#: A verifier refuses more signers than this (LIMIT_EXCEEDED) before checking any.
MAX_SIGNERS = 256
#: Signing times are CWT NumericDate integers in [0, 2^53).
MAX_SIGNING_TIME = 2**53 - 1

#: Below this many bytes of tensor data, digests are hashed on the calling thread.
PARALLEL_HASH_BYTES = 4 << 20

_SIGNER_LABELS = frozenset({H_ALG, H_KID, H_KCCS, H_CWT_CLAIMS})
_ALG_NAMES = {ALG_EDDSA: "EdDSA"}


def _alg_name(alg: Any) -> str | int | None:
    """What reports show for a signer's ``alg``: its name, the integer, or a short description.

    ``alg`` comes from a hostile header and may be any CBOR value (an array or a map is not
    hashable, bytes are not JSON), so it is never used as a key or printed whole.
    """
    if alg is None:
        return None
    if type(alg) is int:
        return _ALG_NAMES.get(alg, alg)
    text = repr(alg)
    return text if len(text) <= 64 else text[:61] + "..."


def packet_digest(packet: Packet) -> bytes:
    """The COSE payload: SHA-256 of the canonical body bytes (the packet id as 32 bytes)."""
    return hashlib.sha256(packet.body_bytes).digest()


def sig_structure(sign_protected: bytes, payload: bytes) -> bytes:
    """The bytes an Ed25519 signature covers (RFC 9052 §4.4, context "Signature")."""
    return canonical_cbor(["Signature", BODY_PROTECTED, sign_protected, b"", payload])


# --------------------------------------------------------------------------- provenance


def provenance_problems(body: PacketBody) -> list[SignatureError]:
    """Every reason the body's provenance is incomplete (spec/signing.md §8); [] if complete."""
    prov = body.provenance
    out: list[SignatureError] = []

    def problem(path: str, message: str) -> None:
        out.append(
            SignatureError("PROVENANCE_INCOMPLETE", message, path=f"/body/provenance/{path}")
        )

    if not prov.generator.name.strip():
        problem("generator/name", "generator name is blank")
    if not prov.generator.version.strip():
        problem("generator/version", "generator version is blank")
    if not prov.task.name.strip():
        problem("task/name", "task name is blank")
    if not prov.parameters:
        problem("parameters", "generation parameters are empty")
    if prov.task_inputs_used < 1:
        problem("task_inputs_used", "no task inputs recorded (task_inputs_used is 0)")
    if body.concepts and prov.concept_probes_used < 1:
        problem("concept_probes_used", "concepts present but concept_probes_used is 0")
    if len(set(prov.parents)) != len(prov.parents):
        problem("parents", "a parent packet id is listed twice")
    return out


def check_provenance(body: PacketBody) -> None:
    """Raise the first ``PROVENANCE_INCOMPLETE`` problem of :func:`provenance_problems`."""
    for problem in provenance_problems(body):
        raise problem


# --------------------------------------------------------------------------- parsing


def _malformed(message: str, path: str = "/signatures") -> SignatureError:
    return SignatureError("SIGNATURE_MALFORMED", message, path=path)


def _strict_item(item: bytes, limits: Limits, path: str, what: str) -> Any:
    """Decode one CBOR item and require that it is deterministically encoded."""
    try:
        value = decode_strict_cbor(item, limits, path)
    except M2ktError as exc:  # includes nesting deeper than the limit
        raise _malformed(f"{what} is not well-formed CBOR ({exc.code})", path) from None
    try:
        again = canonical_cbor(value)
    except Exception:  # values outside what cbor2 re-encodes (undefined, odd simple values)
        again = None
    if again != item:
        raise _malformed(f"{what} is not deterministically encoded", path)
    return value


def _is_array(value: Any, n: int) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == n


def _is_empty_map(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 0


@dataclass(frozen=True)
class _CoseSign:
    payload: bytes
    signers: tuple[Any, ...]


def _parse_cose_sign(item: bytes, limits: Limits = DEFAULT_LIMITS) -> _CoseSign:
    """Check the COSE_Sign structure around the signers (spec §4.1); raises SIGNATURE_MALFORMED."""
    limits.check("max_signature_bytes", len(item), path="/signatures")
    value = _strict_item(bytes(item), limits, "/signatures", "signatures entry")
    if not (isinstance(value, cbor2.CBORTag) and value.tag == COSE_SIGN_TAG):
        raise _malformed("signatures entry is not a COSE_Sign_Tagged item (tag 98)")
    if not _is_array(value.value, 4):
        raise _malformed("COSE_Sign is not an array of 4 items")
    body_protected, body_unprotected, payload, signers = value.value
    if body_protected != BODY_PROTECTED:
        if isinstance(body_protected, bytes) and body_protected:
            try:
                hdr = cbor2.loads(body_protected)
            except Exception:
                hdr = None
            if isinstance(hdr, Mapping) and hdr.get(H_CTY) != CONTENT_TYPE:
                raise _malformed(f"content type is not {CONTENT_TYPE!r}")
        raise _malformed(f"body protected header is not exactly {{3: {CONTENT_TYPE!r}}}")
    if not _is_empty_map(body_unprotected):
        raise _malformed("body unprotected header is not an empty map")
    if payload is None:
        raise _malformed("payload is detached; m2kt carries it attached")
    if not isinstance(payload, bytes) or len(payload) != 32:
        raise _malformed("payload is not a 32-byte packet id")
    if not isinstance(signers, (list, tuple)) or not signers:
        raise _malformed("COSE_Sign holds no COSE_Signature")
    if len(signers) > MAX_SIGNERS:
        raise LimitError(f"{len(signers)} signers exceed {MAX_SIGNERS}", path="/signatures")
    return _CoseSign(payload, tuple(signers))


@dataclass
class _Signer:
    """What one COSE_Signature says, filled in as far as parsing got."""

    protected: bytes = b""
    signature: bytes = b""
    alg: Any = None
    kid: bytes | None = None
    signing_time: int | None = None
    key: PublicKey | None = None


def _parse_signer(raw: Any, index: int, limits: Limits, out: _Signer) -> None:
    """Check one COSE_Signature's shape, algorithm and key (spec §4.2), filling ``out``.

    Raises SIGNATURE_MALFORMED, ALG_UNSUPPORTED or KEY_MALFORMED, in that order of checking.
    """
    path = f"/signatures/signers/{index}"
    if not _is_array(raw, 3):
        raise _malformed("COSE_Signature is not an array of 3 items", path)
    protected, unprotected, signature = raw
    if not isinstance(protected, bytes) or not protected:
        raise _malformed("protected header is not a non-empty byte string", path)
    if not _is_empty_map(unprotected):
        raise _malformed("unprotected header is not an empty map", path)
    if not isinstance(signature, bytes):
        raise _malformed("signature is not a byte string", path)
    out.protected, out.signature = protected, signature
    hdr = _strict_item(protected, limits, path, "protected header")
    if not isinstance(hdr, Mapping):
        raise _malformed("protected header is not a map", path)
    kid = hdr.get(H_KID)
    if isinstance(kid, bytes):
        out.kid = kid
    cwt = hdr.get(H_CWT_CLAIMS)
    if isinstance(cwt, Mapping) and type(cwt.get(CLAIM_IAT)) is int:
        out.signing_time = cwt[CLAIM_IAT]
    if H_ALG not in hdr:
        raise _malformed("protected header has no alg (1)", path)
    out.alg = hdr[H_ALG]
    if type(out.alg) is not int or out.alg != ALG_EDDSA:
        raise SignatureError(
            "ALG_UNSUPPORTED", f"algorithm {_alg_name(out.alg)!r} is not EdDSA (-8)", path=path
        )
    labels = set(hdr)
    if labels != _SIGNER_LABELS:
        missing = sorted(_SIGNER_LABELS - labels, key=str)
        extra = sorted(labels - _SIGNER_LABELS, key=str)
        what = f"lacks label {missing[0]}" if missing else f"has unexpected label {extra[0]!r}"
        raise _malformed(f"protected header {what} (exactly 1, 4, 14, 15 required)", path)
    if not isinstance(kid, bytes) or len(kid) != 32:
        raise _malformed("kid (4) is not a 32-byte byte string", path)
    if not (isinstance(cwt, Mapping) and set(cwt) == {CLAIM_IAT}):
        raise _malformed("CWT claims (15) are not exactly {6: signing time}", path)
    iat = cwt[CLAIM_IAT]
    if type(iat) is not int or not 0 <= iat <= MAX_SIGNING_TIME:
        raise _malformed("signing time (15/6) is not an integer in [0, 2^53)", path)
    kccs = hdr[H_KCCS]
    cnf = kccs.get(CLAIM_CNF) if isinstance(kccs, Mapping) and set(kccs) == {CLAIM_CNF} else None
    cose_key = (
        cnf.get(CNF_COSE_KEY) if isinstance(cnf, Mapping) and set(cnf) == {CNF_COSE_KEY} else None
    )
    if not isinstance(cose_key, Mapping):
        raise _malformed("kccs (14) is not exactly {8: {1: COSE_Key}}", path)
    if set(cose_key) != {KTY, CRV, X}:
        raise SignatureError(
            "KEY_MALFORMED", "signer COSE_Key must hold exactly kty, crv and x", path=path
        )
    try:
        out.key = PublicKey.from_cose_key(cose_key, where="signer key")
    except SignatureError as exc:
        raise SignatureError("KEY_MALFORMED", exc.message, path=path) from None
    if out.key.kid != kid:
        raise _malformed("kid is not the SHA-256 of the signer key", path)


# --------------------------------------------------------------------------- signing


def _signer_protected(key: SigningKey, signing_time: int) -> bytes:
    return canonical_cbor(
        {
            H_ALG: ALG_EDDSA,
            H_KID: key.kid,
            H_KCCS: {CLAIM_CNF: {CNF_COSE_KEY: key.public_key.cose_key()}},
            H_CWT_CLAIMS: {CLAIM_IAT: signing_time},
        }
    )


def sign_packet(
    packet: Packet,
    key: SigningKey,
    *,
    signing_time: int | None = None,
    require_provenance: bool = True,
    limits: Limits = DEFAULT_LIMITS,
) -> Packet:
    """Add ``key``'s signature to ``packet``; existing signatures are kept and stay valid.

    Args:
        packet: the packet to sign; its tensors should have been verified (``codec.decode`` does
            so by default) since the signature vouches for them through their digests.
        key: the signer's secret key.
        signing_time: seconds since the Unix epoch to record; now when None.
        require_provenance: refuse packets whose provenance is incomplete (spec §8).
        limits: decoding limits applied to an existing signatures entry.

    Returns:
        The same packet carrying a COSE_Sign with one more COSE_Signature, appended last.

    Raises:
        SignatureError: ``PROVENANCE_INCOMPLETE``; for an existing signatures entry,
            ``SIGNATURE_MALFORMED``, ``PAYLOAD_MISMATCH``, ``ALG_UNSUPPORTED``, ``KEY_MALFORMED``
            or ``SIGNATURE_INVALID`` (a broken set is never extended).
        LimitError: ``LIMIT_EXCEEDED`` when the existing signatures entry is larger than
            ``limits`` allow or holds more than :data:`MAX_SIGNERS` signers.
        UsageError: ``USAGE`` when ``key`` already signed the packet, or a bad signing time.

    Example:
        >>> import m2kt_ref
        >>> alice = m2kt_ref.SigningKey(bytes(range(32)))
        >>> bob = m2kt_ref.SigningKey(bytes(range(1, 33)))
        >>> packet = m2kt_ref.demo_packet()
        >>> signed = m2kt_ref.sign_packet(packet, alice, signing_time=1_767_225_600)
        >>> signed = m2kt_ref.sign_packet(signed, bob, signing_time=1_767_225_600)
        >>> signed.packet_id == packet.packet_id      # signatures do not change the id
        True
        >>> m2kt_ref.decode(m2kt_ref.encode(signed)).signatures == signed.signatures
        True
        >>> try:
        ...     m2kt_ref.sign_packet(signed, alice)
        ... except m2kt_ref.UsageError as exc:
        ...     print(exc.code)
        USAGE
    """
    if require_provenance:
        check_provenance(packet.body)
    payload = packet_digest(packet)
    signers: list[Any] = []
    if packet.signatures is not None:
        existing = _parse_cose_sign(packet.signatures, limits)
        if existing.payload != payload:
            raise SignatureError(
                "PAYLOAD_MISMATCH", "existing signatures cover another packet", path="/signatures"
            )
        for i, raw in enumerate(existing.signers):
            parsed = _Signer()
            _parse_signer(raw, i, limits, parsed)
            assert parsed.key is not None
            parsed.key.verify(sig_structure(parsed.protected, payload), parsed.signature)
            if parsed.kid == key.kid:
                raise UsageError(f"already signed by key {key.kid.hex()[:16]}…")
            signers.append([parsed.protected, {}, parsed.signature])
    moment = int(time.time()) if signing_time is None else signing_time
    if type(moment) is not int or not 0 <= moment <= MAX_SIGNING_TIME:
        raise UsageError("signing time must be an integer in [0, 2^53)")
    protected = _signer_protected(key, moment)
    signature = key.sign(sig_structure(protected, payload))
    signers.append([protected, {}, signature])
    item = canonical_cbor(cbor2.CBORTag(COSE_SIGN_TAG, [BODY_PROTECTED, {}, payload, signers]))
    return packet.with_signatures(item)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Check:
    """One check on one signer: its name, whether it passed, and why (a code when it failed)."""

    name: str
    passed: bool
    message: str
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.name, "passed": self.passed, "message": self.message}
        if self.code:
            out["code"] = self.code
        return out


@dataclass(frozen=True)
class SignerResult:
    """What the verifier found about one COSE_Signature, in the order the checks ran.

    Checks: ``structure``, ``algorithm``, ``key``, ``signature`` (these four must pass for every
    signer, trusted or not), then ``trust`` and ``validity`` (decide whether the signer counts).
    A signer counts toward k when every check passed and no earlier signer had the same key.
    """

    index: int
    kid: str | None
    name: str | None
    alg: Any
    signing_time: int | None
    checks: tuple[Check, ...]
    duplicate_of: int | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def counted(self) -> bool:
        return self.passed and self.duplicate_of is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kid": self.kid,
            "name": self.name,
            "alg": _alg_name(self.alg),
            "signing_time": format_time(self.signing_time)
            if self.signing_time is not None
            else None,
            "trusted": any(c.name == "trust" and c.passed for c in self.checks),
            "counted": self.counted,
            "duplicate_of": self.duplicate_of,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of verifying one packet: valid when ``errors`` is empty.

    ``errors`` lists every problem in check order (spec §7); ``signers`` describes each
    COSE_Signature; ``required`` is k and ``counted`` the distinct trusted signers found.

    Args:
        packet_id: hex id of the packet verified (None when it did not decode).
        required: k, the number of distinct trusted signers the policy requires.
        signers: one :class:`SignerResult` per COSE_Signature, in order.
        errors: every problem found, as coded :class:`M2ktError` instances.

    Example:
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> packet = m2kt_ref.sign_packet(m2kt_ref.demo_packet(), key, signing_time=0)
        >>> result = m2kt_ref.verify_packet(packet, m2kt_ref.TrustStore(), now=0)
        >>> result.valid, result.required, result.counted
        (False, 1, 0)
        >>> [e.code for e in result.errors]
        ['SIGNER_UNTRUSTED', 'POLICY_UNMET']
        >>> [check.name for check in result.signers[0].checks if check.passed]
        ['structure', 'algorithm', 'key', 'signature']
        >>> result.to_dict()["valid"]
        False
        >>> try:
        ...     result.raise_for_errors()
        ... except m2kt_ref.SignatureError as exc:
        ...     print(exc.code)
        SIGNER_UNTRUSTED
    """

    packet_id: str | None
    required: int
    signers: tuple[SignerResult, ...] = ()
    errors: tuple[M2ktError, ...] = ()

    @property
    def valid(self) -> bool:
        """True when no check failed."""
        return not self.errors

    @property
    def counted(self) -> int:
        """Distinct trusted signers whose every check passed."""
        return sum(1 for s in self.signers if s.counted)

    def raise_for_errors(self) -> None:
        """Raise the first error, if any."""
        if self.errors:
            raise self.errors[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form ``m2kt verify --json`` prints."""
        return {
            "valid": self.valid,
            "packet_id": self.packet_id,
            "required": self.required,
            "counted": self.counted,
            "errors": [e.to_dict() for e in self.errors],
            "signers": [s.to_dict() for s in self.signers],
        }


# --------------------------------------------------------------------------- verification

_STAGE_OF_CODE = {
    "SIGNATURE_MALFORMED": "structure",
    "ALG_UNSUPPORTED": "algorithm",
    "KEY_MALFORMED": "key",
}


@dataclass
class _SignerCheck:
    parsed: _Signer = field(default_factory=_Signer)
    checks: list[Check] = field(default_factory=list)
    error: SignatureError | None = None  # fatal for the packet
    soft: list[SignatureError] = field(default_factory=list)  # matter only if the policy fails
    trusted: TrustedKey | None = None


def _check_signer(
    raw: Any, index: int, payload: bytes, trust: TrustStore, now: int, limits: Limits
) -> _SignerCheck:
    out = _SignerCheck()
    p = out.parsed
    try:
        _parse_signer(raw, index, limits, p)
    except SignatureError as exc:
        failed = _STAGE_OF_CODE[exc.code]
        for stage in ("structure", "algorithm", "key"):
            if stage == failed:
                out.checks.append(Check(stage, False, exc.message, exc.code))
                break
            out.checks.append(Check(stage, True, "ok"))
        out.error = exc
        return out
    assert p.key is not None and p.kid is not None and p.signing_time is not None
    out.checks += [
        Check("structure", True, "COSE_Signature well-formed"),
        Check("algorithm", True, "EdDSA (-8)"),
        Check("key", True, "Ed25519 key in the prime-order subgroup; kid = SHA-256(key)"),
    ]
    path = f"/signatures/signers/{index}"
    try:
        p.key.verify(sig_structure(p.protected, payload), p.signature)
    except SignatureError as exc:
        out.checks.append(Check("signature", False, exc.message, exc.code))
        out.error = SignatureError(exc.code, exc.message, path=path)
        return out
    out.checks.append(Check("signature", True, "Ed25519 signature verifies"))
    trusted = trust.get(p.kid)
    if trusted is None or trusted.public_key != p.key:
        err = SignatureError(
            "SIGNER_UNTRUSTED", f"key {p.kid.hex()[:16]}… is not in the trust store", path=path
        )
        out.checks.append(Check("trust", False, err.message, err.code))
        out.soft.append(err)
        return out
    out.trusted = trusted
    out.checks.append(Check("trust", True, f"trusted as {trusted.name!r}"))
    problem = trusted.window_error(p.signing_time, "signing time") or trusted.window_error(
        now, "verification time"
    )
    if problem:
        problem.path = path
        out.checks.append(Check("validity", False, problem.message, problem.code))
        out.soft.append(problem)
    else:
        out.checks.append(Check("validity", True, "signing and verification time in window"))
    return out


def verify_packet(
    packet: Packet,
    trust: TrustStore,
    *,
    min_signers: int = 1,
    now: int | None = None,
    check_tensors: bool = True,
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> VerificationResult:
    """Verify a decoded packet's signatures against a trust store and a k-of-n policy.

    Args:
        packet: a packet from :func:`~m2kt_ref.decode` / :func:`~m2kt_ref.read_packet`. Its
            tensor data is checked here (step 7 of packet-1.1.md §10) unless ``check_tensors``
            is False or the decoder already checked it (``packet.data_verified``).
        trust: the keys the verifier trusts.
        min_signers: k; the packet's own ``safety.min_signers`` raises it, never lowers it.
        now: verification time (Unix seconds) for validity windows; the clock when None.
        check_tensors: check sizes, padding and SHA-256 digests of the tensor data (on a thread
            pool of ``workers`` threads; all cores when None). Turn off only for data already
            checked.
        limits: decoding limits for the signatures entry.

    Returns:
        A :class:`VerificationResult`; ``valid`` only when every check of spec §7 passed.
        Problems (corrupt tensors, malformed or untrusted signatures, an unmet policy) are
        listed in its ``errors``, not raised.

    Raises:
        UsageError: ``USAGE`` when ``min_signers`` is below 1.

    Example:
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> packet = m2kt_ref.sign_packet(m2kt_ref.demo_packet(), key, signing_time=0)
        >>> trust = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(key.public_key, "alice")])
        >>> result = m2kt_ref.verify_packet(packet, trust, now=0)
        >>> result.valid, result.counted, result.signers[0].name
        (True, 1, 'alice')
        >>> [e.code for e in m2kt_ref.verify_packet(packet, trust, min_signers=2).errors]
        ['POLICY_UNMET']
        >>> [e.code for e in m2kt_ref.verify_packet(m2kt_ref.demo_packet(), trust).errors]
        ['UNSIGNED']
    """
    if min_signers < 1:
        raise UsageError("min_signers must be at least 1")
    moment = int(time.time()) if now is None else now
    required = max(min_signers, packet.body.safety.min_signers)
    errors: list[M2ktError] = []
    signers: list[SignerResult] = []
    payload = packet_digest(packet)
    # packet-1.1.md §10 step 7 comes before the signatures; a packet decoded with its data
    # checked (the default of decode and read_packet) is not hashed a second time
    if check_tensors and not packet.data_verified:
        if workers is None and len(packet.data) < PARALLEL_HASH_BYTES:
            workers = 1  # a thread pool costs more than it saves on a small packet
        errors += iter_tensor_data_errors(packet.body, packet.data, workers=workers)
    try:
        if packet.signatures is None:
            raise SignatureError("UNSIGNED", "the packet carries no signatures")
        cose = _parse_cose_sign(packet.signatures, limits)
        if cose.payload != payload:
            raise SignatureError(
                "PAYLOAD_MISMATCH",
                f"signatures cover packet {cose.payload.hex()[:16]}…, not this one "
                f"({payload.hex()[:16]}…)",
                path="/signatures",
            )
    except M2ktError as exc:
        errors.append(exc)
        cose = None
    if cose is not None:
        errors += provenance_problems(packet.body)
        seen: dict[bytes, int] = {}
        soft: list[SignatureError] = []
        for i, raw in enumerate(cose.signers):
            r = _check_signer(raw, i, payload, trust, moment, limits)
            if r.error is not None:
                errors.append(r.error)
            soft += r.soft
            p = r.parsed
            duplicate_of = None
            if p.kid is not None and r.error is None:
                duplicate_of = seen.get(p.kid)
                if duplicate_of is None:
                    seen[p.kid] = i
            signers.append(
                SignerResult(
                    index=i,
                    kid=p.kid.hex() if p.kid is not None else None,
                    name=r.trusted.name if r.trusted else None,
                    alg=p.alg,
                    signing_time=p.signing_time,
                    checks=tuple(r.checks),
                    duplicate_of=duplicate_of,
                )
            )
        counted = sum(1 for s in signers if s.counted)
        if counted < required:
            errors += soft
            errors.append(
                SignatureError(
                    "POLICY_UNMET",
                    f"{counted} distinct trusted signer(s) with valid signatures; "
                    f"{required} required",
                    path="/signatures",
                )
            )
    return VerificationResult(payload.hex(), required, tuple(signers), tuple(errors))


def verify_bytes(
    buf: bytes | memoryview,
    trust: TrustStore,
    *,
    min_signers: int = 1,
    now: int | None = None,
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> VerificationResult:
    """Decode a packet (either encoding) and verify it; decoding problems land in ``errors``."""
    try:
        if codec.sniff_json(bytes(buf[:64])):
            packet = codec.decode_json(bytes(buf), limits, verify_tensors=False)
        else:
            packet = codec.decode(buf, limits, verify_tensors=False)
    except M2ktError as exc:
        return VerificationResult(None, min_signers, (), (exc,))
    return verify_packet(
        packet, trust, min_signers=min_signers, now=now, workers=workers, limits=limits
    )


def verify_file(
    path: str | Path,
    trust: TrustStore,
    *,
    min_signers: int = 1,
    now: int | None = None,
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> VerificationResult:
    """Read (memory-mapped) and verify a packet file in either encoding; see :func:`verify_packet`.

    Args:
        path: the packet file.
        trust: the keys the verifier trusts.
        min_signers: k; the packet's own ``safety.min_signers`` raises it, never lowers it.
        now: verification time (Unix seconds) for validity windows; the clock when None.
        workers: threads that hash the tensor data (all cores when None).
        limits: decoding limits.

    Returns:
        A :class:`VerificationResult`. A file that does not decode gives an invalid result
        whose ``errors`` hold the decoding problem (``packet_id`` is then None).

    Raises:
        FileAccessError: ``IO_ERROR`` when the file cannot be read.
        UsageError: ``USAGE`` when ``min_signers`` is below 1.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> trust = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(key.public_key, "alice")])
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "signed.m2kt"
        ...     signed = m2kt_ref.sign_packet(m2kt_ref.demo_packet(), key, signing_time=0)
        ...     m2kt_ref.write_packet(signed, path)
        ...     print(m2kt_ref.verify_file(path, trust, now=0).valid)
        ...     _ = path.write_bytes(b"not a packet")
        ...     print([e.code for e in m2kt_ref.verify_file(path, trust).errors])
        True
        ['NOT_A_PACKET']
    """
    return verify_bytes(
        read_bytes(path),
        trust,
        min_signers=min_signers,
        now=now,
        workers=workers,
        limits=limits,
    )


def describe_signers(
    packet: Packet, trust: TrustStore | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> list[dict[str, Any]]:
    """Who signed the packet, as far as its signatures entry says (for ``m2kt inspect``).

    Nothing is verified here beyond the structure: use :func:`verify_packet` for that.

    Returns:
        One dict per COSE_Signature, in order: ``index``, ``kid`` (hex), ``name`` (from
        ``trust`` when given and the key is in it, else None), ``alg`` ("EdDSA" or the raw
        value), ``signing_time`` (RFC 3339 UTC); plus ``error`` ({code, message}) when that
        signature is malformed. An unsigned packet gives [].

    Raises:
        SignatureError: ``SIGNATURE_MALFORMED`` when the COSE_Sign around the signers is.
        LimitError: ``LIMIT_EXCEEDED`` for more than :data:`MAX_SIGNERS` signers.
    """
    if packet.signatures is None:
        return []
    cose = _parse_cose_sign(packet.signatures, limits)
    out = []
    for i, raw in enumerate(cose.signers):
        p = _Signer()
        error: SignatureError | None = None
        try:
            _parse_signer(raw, i, limits, p)
        except SignatureError as exc:
            error = exc
        known = trust.get(p.kid) if trust is not None and p.kid is not None else None
        entry: dict[str, Any] = {
            "index": i,
            "kid": p.kid.hex() if p.kid is not None else None,
            "name": known.name if known is not None else None,
            "alg": _alg_name(p.alg),
            "signing_time": format_time(p.signing_time) if p.signing_time is not None else None,
        }
        if error is not None:
            entry["error"] = {"code": error.code, "message": error.message}
        out.append(entry)
    return out
