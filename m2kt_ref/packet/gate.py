"""The trust gate: whether a packet may be ingested at all (spec/algorithms.md §3.1).

Torch-free on purpose: it only verifies digests and signatures against a trust store and a k-of-n
policy, so any consumer of packets (an ingester in another stack, a registry) can apply the same
gate before doing any work.
"""

from __future__ import annotations

from typing import Any

from m2kt_ref.errors import IngestRefusedError, TensorError
from m2kt_ref.packet.codec import Packet
from m2kt_ref.packet.signing import verify_packet
from m2kt_ref.packet.trust import TrustStore

__all__ = ["check_trust"]


def check_trust(
    packet: Packet,
    trust: TrustStore | None,
    *,
    require_signature: bool = True,
    min_signers: int = 1,
    allow_unverified: bool = False,
    now: int | None = None,
) -> dict[str, Any]:
    """Verify tensor digests and signatures; refuse unless verified or explicitly opted out.

    The signature policy is the stricter of the packet's ``safety`` and the caller's: a signature
    is required when either requires one; k is the larger ``min_signers``. Tensor data that
    does not match its digests is refused even with ``allow_unverified`` (that is corruption,
    not a trust question).

    Args:
        packet: a decoded packet.
        trust: the trusted keys; None trusts nobody.
        require_signature: the caller's own requirement (the packet can only add to it).
        min_signers: the caller's k of the k-of-n policy.
        allow_unverified: let an unverified packet through (recorded in the returned section).
        now: verification time (Unix seconds) for key validity windows; the clock when None.

    Returns:
        the ingestion report's ``trust`` section.

    Raises:
        IngestRefusedError: ``INGEST_REFUSED``; ``exc.verification`` holds the same section.

    Example:
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> packet = m2kt_ref.sign_packet(m2kt_ref.demo_packet(), key, signing_time=0)
        >>> trust = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(key.public_key, "alice")])
        >>> section = m2kt_ref.check_trust(packet, trust, now=0)
        >>> section["verified"], [s["name"] for s in section["signers"]]
        (True, ['alice'])
        >>> try:
        ...     m2kt_ref.check_trust(packet, None)
        ... except m2kt_ref.IngestRefusedError as exc:
        ...     print(exc.code, exc.verification["verified"])
        INGEST_REFUSED False
        >>> m2kt_ref.check_trust(packet, None, allow_unverified=True)["allow_unverified"]
        True
    """
    safety = packet.body.safety
    required = bool(safety.require_signature or require_signature)
    k = max(int(min_signers), int(safety.min_signers))
    result = verify_packet(
        packet, trust if trust is not None else TrustStore(), min_signers=k, now=now
    )
    integrity = [e for e in result.errors if isinstance(e, TensorError)]
    info: dict[str, Any] = {
        "verified": result.valid,
        "signature_required": required,
        "allow_unverified": bool(allow_unverified),
        "min_signers": result.required,
        "counted_signers": result.counted,
        "trusted_keys": 0 if trust is None else len(trust),
        "signers": [{"kid": s.kid, "name": s.name, "counted": s.counted} for s in result.signers],
        "errors": [e.to_dict() for e in result.errors],
    }
    if integrity:
        first = integrity[0]
        raise IngestRefusedError(
            f"packet {result.packet_id} is corrupt: {first.code}: {first}", info
        )
    if not result.valid and required and not allow_unverified:
        problem = result.errors[0]
        raise IngestRefusedError(
            f"packet {result.packet_id} is not verified ({problem.code}: {problem}); pass trusted "
            "keys, or opt out explicitly (allow_unverified, --allow-unverified)",
            info,
        )
    return info
