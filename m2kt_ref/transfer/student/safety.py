"""The safety policy of an ingestion: which bounds apply, and whether a run stayed inside them.

The packet may tighten a bound and never loosen it (spec/algorithms.md §1.7, §4); the checks are
plain comparisons of measured numbers, recorded in the report whether they pass or not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from m2kt_ref.packet.codec import Packet
from m2kt_ref.transfer.student.config import DEFAULT_BOUNDS, IngestConfig

__all__ = ["effective_policy", "safety_checks"]

_BOUNDS_TOL = 1e-6


def effective_policy(packet: Packet, config: IngestConfig) -> dict[str, Any]:
    """The safety bounds that apply: per bound, the smaller of the packet's and the config's
    (either may be absent; both absent gives :data:`DEFAULT_BOUNDS`), with where it came from.

    With ``config.ignore_packet_policy`` (an explicit, recorded research override) only the
    config's bounds apply, and a bound the config leaves at None is no bound at all (``value``
    None, ``source`` ``none``).
    """
    safety = packet.body.safety
    ignore = bool(config.ignore_packet_policy)
    out: dict[str, Any] = {
        "protected_concepts": list(safety.protected_concepts or []),
        "packet_policy_ignored": ignore,
    }
    for name, default in DEFAULT_BOUNDS.items():
        from_packet = None if ignore else getattr(safety, name)
        from_config = getattr(config, name)
        candidates = [
            (v, s) for v, s in ((from_packet, "packet"), (from_config, "config")) if v is not None
        ]
        if candidates:
            value, source = min(candidates, key=lambda vs: vs[0])
            out[name] = {"value": float(value), "source": source}
        elif ignore:
            out[name] = {"value": None, "source": "none"}
        else:
            out[name] = {"value": float(default), "source": "default"}
    return out


def safety_checks(
    policy: Mapping[str, Any],
    drift: float,
    divergence: float | None,
    cap_before: float | None,
    cap_after: float | None,
    training: Mapping[str, Any],
    self_agreement: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    def check(name: str, value: float | None, bound: str) -> dict[str, Any]:
        raw = policy[bound]["value"]
        if raw is None:
            return {
                "name": name,
                "value": value,
                "limit": None,
                "passed": True,
                "measured": value is not None,
                "message": f"{name} has no bound (packet policy ignored by the caller)",
            }
        limit = float(raw)
        if value is None:
            return {
                "name": name,
                "value": None,
                "limit": limit,
                "passed": True,
                "measured": False,
                "message": f"{name} not measured (no protected rows)",
            }
        ok = math.isfinite(value) and value <= limit + _BOUNDS_TOL
        return {
            "name": name,
            "value": value,
            "limit": limit,
            "passed": bool(ok),
            "measured": True,
            "message": f"{name} {value:.4g} {'<=' if ok else '>'} {limit:.4g}",
        }

    drop = None if cap_before is None or cap_after is None else cap_before - cap_after
    out = [
        check("parameter_drift", drift, "max_parameter_drift"),
        check("output_divergence", divergence, "max_output_divergence"),
        check("capability_drop", drop, "max_capability_drop"),
    ]
    if self_agreement is not None:
        out.append(_self_check(self_agreement))
    finite = bool(training.get("finite", True))
    out.append(
        {
            "name": "finite_loss",
            "value": None,
            "limit": None,
            "passed": finite,
            "measured": True,
            "message": "the loss stayed finite" if finite else "the loss became NaN or infinite",
        }
    )
    return out


def _self_check(sa: Mapping[str, Any]) -> dict[str, Any]:
    """The self-agreement check: the fraction of the student's own answers that ingestion
    changed, bounded when the student is known to be trained (``sa["enforced"]``)."""
    value = sa["disagreement"]
    limit = sa["limit"] if sa["enforced"] else None
    if value is None:
        return {
            "name": "self_agreement",
            "value": None,
            "limit": limit,
            "passed": True,
            "measured": False,
            "message": "self_agreement not measured (no rows)",
        }
    ok = limit is None or value <= limit + _BOUNDS_TOL
    where = f"on {sa['rows']} rows without labels"
    if limit is None:
        why = "student not known to be trained" if sa["limit"] is not None else "no bound"
        message = f"self_disagreement {value:.4g} {where}, not enforced ({why})"
    else:
        message = f"self_disagreement {value:.4g} {'<=' if ok else '>'} {limit:.4g} {where}"
    return {
        "name": "self_agreement",
        "value": float(value),
        "limit": limit,
        "passed": bool(ok),
        "measured": True,
        "message": message,
    }
