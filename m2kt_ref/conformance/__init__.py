"""The conformance suite's machinery: vectors, the process protocol, the harness, the adapter.

``m2kt conformance run --impl COMMAND --profile reader|verifier|producer`` drives any
implementation through the vectors in ``conformance/``; ``m2kt conformance adapter`` puts the
reference library behind the same protocol. See spec/conformance.md.
"""

from m2kt_ref.conformance.harness import (
    Outcome,
    Report,
    json_report,
    junit_report,
    run_suite,
    text_report,
)
from m2kt_ref.conformance.protocol import PROFILES, PROTOCOL_VERSION, judge, summarize
from m2kt_ref.conformance.vectors import Vector, default_suite_dir, load_manifest, load_vectors

__all__ = [
    "PROFILES",
    "PROTOCOL_VERSION",
    "Outcome",
    "Report",
    "Vector",
    "default_suite_dir",
    "json_report",
    "judge",
    "junit_report",
    "load_manifest",
    "load_vectors",
    "run_suite",
    "summarize",
    "text_report",
]
