"""The verifier operation of the reference adapter: trust store, policy, then signatures."""

from __future__ import annotations

from typing import Any

from m2kt_ref.errors import UsageError
from m2kt_ref.packet import signing
from m2kt_ref.packet.codec import Packet
from m2kt_ref.packet.limits import Limits
from m2kt_ref.packet.trust import (
    TrustStore,
    parse_time,
    trusted_keys_from_json,
    trusted_keys_from_text,
)

__all__ = ["load_policy", "verify"]


def load_policy(inp: dict[str, Any]) -> tuple[TrustStore, int, int]:
    """The request's trust store, k and verification time (checked before the packet is read).

    Raises:
        SignatureError: ``TRUST_STORE_MALFORMED`` or ``KEY_MALFORMED`` for the trust store.
        UsageError: ``USAGE`` for a bad ``min_signers`` or ``now``.
    """
    if "trust_text" in inp:
        text = inp["trust_text"]
        if not isinstance(text, str):
            raise UsageError("trust_text must be a string")
        keys = trusted_keys_from_text(text.encode("utf-8"), source="request trust store")
    else:
        keys = trusted_keys_from_json(inp.get("trust"), source="request trust store")
    store = TrustStore(keys)
    k = inp.get("min_signers", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UsageError("min_signers must be an integer of at least 1")
    if not isinstance(inp.get("now"), str):
        raise UsageError("now must be an RFC 3339 UTC time")
    try:
        now = parse_time(inp["now"], "now")
    except Exception:
        raise UsageError("now must be an RFC 3339 UTC time") from None
    return store, k, now


def verify(packet: Packet, policy: tuple[TrustStore, int, int], limits: Limits) -> list[str]:
    """Verify ``packet``; returns the key ids (hex, sorted) of the signers counted toward k.

    Raises:
        M2ktError: the first problem :func:`m2kt_ref.packet.signing.verify_packet` reports.
    """
    store, k, now = policy
    result = signing.verify_packet(packet, store, min_signers=k, now=now, limits=limits)
    result.raise_for_errors()
    return sorted({s.kid for s in result.signers if s.counted and s.kid is not None})
