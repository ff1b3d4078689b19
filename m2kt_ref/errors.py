"""Every error m2kt raises, with the stable codes of the spec's registry (spec/errors.md).

One base class, :class:`M2ktError`; each family of leaves also inherits the builtin that fits
(``ValueError``, ``OSError``) so callers can catch either. Every instance carries a ``code`` from
:data:`REGISTRY` and, where it applies, a ``path`` (a JSON Pointer into the packet's JSON form).
A family with several codes is raised as ``Family(code, message)``; one with a single code
(:class:`UsageError`, :class:`LimitError`, :class:`FileAccessError`) as ``Family(message)``.
The narrower classes at the end (``TaskError``, ``ModelDirError``...) add no code of their own:
they let a caller catch one kind of mistake while the code stays the family's.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "REGISTRY",
    "DecodeError",
    "DeviceUnavailableError",
    "DistributedError",
    "FileAccessError",
    "IngestError",
    "IngestRefusedError",
    "LimitError",
    "M2ktError",
    "ModelDirError",
    "NetConfigError",
    "SignatureError",
    "TaskError",
    "TaskOptionError",
    "TensorError",
    "UnknownLayerError",
    "UnknownTaskError",
    "UsageError",
    "ValidationError",
    "VersionError",
    "error_for",
    "family_of",
]

#: code -> meaning. The spec's registry table is checked against this mapping by the tests.
REGISTRY: dict[str, str] = {}


def _register(codes: dict[str, str]) -> frozenset[str]:
    for code in codes:
        if code in REGISTRY:
            raise RuntimeError(f"error code {code} registered twice")
    REGISTRY.update(codes)
    return frozenset(codes)


class M2ktError(Exception):
    """Base of all m2kt errors: a stable ``code``, a human ``message`` and an optional ``path``."""

    codes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, code: str, message: str, *, path: str | None = None) -> None:
        if code not in self.codes:
            raise RuntimeError(f"{type(self).__name__} cannot carry code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.message}{where}"

    def to_dict(self) -> dict[str, str]:
        """The machine-readable form used by ``--json`` output and the conformance protocol."""
        out = {"code": self.code, "message": self.message}
        if self.path:
            out["path"] = self.path
        return out


class _SingleCodeError(M2ktError):
    """A family with exactly one code, so callers give the message alone."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        (code,) = self.codes
        super().__init__(code, message, path=path)


class DecodeError(M2ktError, ValueError):
    """The bytes are not a well-formed, deterministically encoded packet."""

    codes = _register(
        {
            "TRUNCATED": "The input ends before the encoded structure is complete.",
            "CBOR_MALFORMED": "The input is not well-formed CBOR (RFC 8949 §3).",
            "NOT_A_PACKET": "The input is well-formed but lacks the packet envelope "
            "(magic tag 55799 and the top-level map of §4.1).",
            "NON_CANONICAL": "The encoding is not the deterministic encoding of §4.2 "
            "(key order, minimal integers and lengths, shortest floats, number types).",
            "INDEFINITE_LENGTH": "An indefinite-length string, array or map appears.",
            "DUPLICATE_KEY": "A map holds the same key twice.",
            "TRAILING_BYTES": "Bytes follow the end of the packet.",
            "BAD_PADDING": "The envelope's pad is not the length §4.1 prescribes, or not zeros.",
            "JSON_MALFORMED": "The JSON form is not valid JSON (RFC 8259) or base64 (RFC 4648 §4).",
        }
    )


class LimitError(_SingleCodeError, ValueError):
    """A size, count or depth limit (§8) was exceeded; detected before allocating."""

    codes = _register({"LIMIT_EXCEEDED": "A size, count or nesting-depth limit of §8 is exceeded."})


class VersionError(M2ktError, ValueError):
    """The packet declares a format this reader does not implement."""

    codes = _register(
        {
            "UNSUPPORTED_VERSION": "The header's format or major version is not one this "
            "reader implements.",
            "CRITICAL_EXTENSION": "An extension marked critical is not understood.",
        }
    )


class ValidationError(M2ktError, ValueError):
    """The packet decodes but breaks a structural (schema) or semantic rule."""

    codes = _register(
        {
            "SCHEMA_VIOLATION": "The body, or the data of a registered extension, does not match "
            "its JSON Schema (missing or unknown field, wrong type, value out of range).",
            "DUPLICATE_ID": "Two concepts, traces, anchors or tensors share an id.",
            "DANGLING_REFERENCE": "A reference names a concept or tensor that does not exist.",
            "DIMENSION_MISMATCH": "A tensor's shape disagrees with the latent dimension or with "
            "the item it describes.",
            "NONFINITE_VALUE": "A float (in the body or a tensor) is NaN or infinite.",
            "ISA_CYCLE": "The is_a edges of the abstraction graph contain a cycle.",
            "UNKNOWN_RELATION": "An edge uses a relation that is neither registered nor "
            "prefixed 'x-'.",
        }
    )


class TensorError(M2ktError, ValueError):
    """A tensor descriptor disagrees with its bytes."""

    codes = _register(
        {
            "TENSOR_DTYPE": "A scale is missing (i8) or present (other dtypes), the reserved i8 "
            "value -128 appears, or a dtype name reaches a reader that does not know it.",
            "TENSOR_SHAPE": "The byte length differs from dtype size times the shape's product.",
            "TENSOR_LAYOUT": "Offsets are not aligned, overlap, leave holes, exceed the data "
            "section, or padding bytes are not zero.",
            "TENSOR_DIGEST": "A tensor's bytes do not match its SHA-256 digest.",
        }
    )


class UsageError(_SingleCodeError, ValueError):
    """The caller asked for something impossible (bad option, missing file, no CUDA...)."""

    codes = _register(
        {
            "USAGE": "The command line or call arguments are invalid.",
        }
    )


class FileAccessError(_SingleCodeError, OSError):
    """A file could not be read or written (missing, unreadable, disk full)."""

    codes = _register({"IO_ERROR": "A file could not be read or written."})


class SignatureError(M2ktError, ValueError):
    """Signing, key, trust or signature-policy failure (spec/signing.md §9)."""

    codes = _register(
        {
            "UNSIGNED": "Signatures were required but the packet carries no signatures entry.",
            "SIGNATURE_MALFORMED": "The signatures entry, or one COSE_Signature in it, is not "
            "the deterministically encoded COSE_Sign of spec/signing.md §4 (tag, shape, "
            "header labels and types, content type, kid equal to the signer key's SHA-256).",
            "ALG_UNSUPPORTED": "A signer's protected header names an algorithm other than "
            "EdDSA (-8).",
            "PAYLOAD_MISMATCH": "The COSE payload is not the packet id (SHA-256 of this "
            "packet's canonical body): the signatures belong to another packet.",
            "SIGNATURE_INVALID": "An Ed25519 signature does not verify (including a "
            "non-canonical S >= L or a small-order R).",
            "KEY_MALFORMED": "A key (key file, trust-store entry or signer key) is not a "
            "valid Ed25519 key in the documented form: wrong length, non-canonical "
            "encoding, small order or outside the prime-order subgroup.",
            "TRUST_STORE_MALFORMED": "A trust store is not the JSON document of "
            "spec/signing.md §6, or lists one key twice with different attributes.",
            "SIGNER_UNTRUSTED": "A signer's key is not in the verifier's trust store.",
            "KEY_EXPIRED": "The signing time or the verification time is after the trusted "
            "key's not_after.",
            "KEY_NOT_YET_VALID": "The signing time or the verification time is before the "
            "trusted key's not_before.",
            "POLICY_UNMET": "Fewer distinct trusted signers with valid signatures than the "
            "policy requires (k of n).",
            "PROVENANCE_INCOMPLETE": "The packet's provenance lacks what spec/signing.md §8 "
            "requires before a packet may be signed.",
        }
    )


class IngestError(M2ktError, ValueError):
    """Student-side ingestion stopped or undone (spec/algorithms.md §3-§4)."""

    codes = _register(
        {
            "INGEST_REFUSED": "The packet failed verification before ingestion: its tensor "
            "data does not match its digests (always refused), or its signatures do not meet "
            "the trust store and k-of-n policy and the caller did not opt out explicitly. "
            "Nothing was ingested.",
            "INGEST_INCOMPATIBLE": "The packet does not fit the student: another task, tokens "
            "outside the student's vocabulary, input rows of another length, or no anchors to "
            "align with.",
            "INGEST_ROLLED_BACK": "A safety check failed after ingestion (parameter drift, output "
            "divergence or capability drop beyond its bound); the student was restored to its "
            "pre-ingestion weights.",
            "INGEST_BUDGET": "Ingesting the packet would build more index entries from its graph "
            "(concept-anchor membership, hierarchy closure, adjacency) than the configured work "
            "budget allows; refused before they were built. Nothing was ingested.",
        }
    )


class DistributedError(_SingleCodeError, ConnectionError):
    """A distributed run (`--distributed` under torchrun, docs/scaling.md) could not go on."""

    codes = _register(
        {
            "DIST_FAILED": "A rank of a distributed run failed, died, disagreed with the others "
            "or did not answer within the process-group timeout; the run stopped on every "
            "rank and wrote nothing (the student directory is untouched).",
        }
    )


class IngestRefusedError(IngestError):
    """The packet failed verification and the caller did not opt out (``INGEST_REFUSED``).

    Attributes:
        verification: the trust section of the report (signers, error codes).
        report: the ingestion report with decision ``refused`` (nothing was ingested), filled in
            by the ingestion that raised it.
    """

    def __init__(self, message: str, verification: dict[str, Any]) -> None:
        super().__init__("INGEST_REFUSED", message)
        self.verification = verification
        self.report: dict[str, Any] | None = None


# --------------------------------------------------------------------------- narrower kinds


class TaskError(UsageError):
    """A task name, a task option or a split request is wrong (code ``USAGE``)."""


class UnknownTaskError(TaskError):
    """No task family is registered under that name."""


class TaskOptionError(TaskError):
    """A task option is unknown, has the wrong type, or is out of range."""


class NetConfigError(UsageError):
    """A net config is malformed (unknown field or family, bad size); code ``USAGE``."""


class UnknownLayerError(UsageError):
    """A layer name does not resolve to a submodule; the message lists the valid names."""


class DeviceUnavailableError(UsageError):
    """The requested device does not exist here (e.g. ``cuda`` without CUDA); code ``USAGE``."""


class ModelDirError(FileAccessError):
    """A model directory is missing, incomplete or unreadable; code ``IO_ERROR``."""


def family_of(code: str) -> type[M2ktError]:
    """The class that registered ``code`` (raises ``KeyError`` for an unregistered code)."""
    return _FAMILIES[code]


def error_for(code: str, message: str, *, path: str | None = None) -> M2ktError:
    """An instance of ``code``'s family carrying ``code`` (for code that handles codes as data)."""
    family = family_of(code)
    if issubclass(family, _SingleCodeError):
        return family(message, path=path)
    return family(code, message, path=path)


def _walk_families() -> dict[str, type[M2ktError]]:
    out: dict[str, type[M2ktError]] = {}
    stack = list(M2ktError.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        for code in cls.__dict__.get("codes", ()):
            out[code] = cls
    return out


_FAMILIES = _walk_families()
