"""Every MUST and MUST NOT of spec/packet-1.1.md and spec/signing.md, and what tests it.

Each requirement is identified by a quote of the spec (whitespace collapsed) that contains its
MUST; it names the mutants (``catalogue.py``) that break it, each of which some vector kills, or,
for a requirement that a reader or verifier run through the protocol cannot show (what signers,
students or spec editors must do), the test that checks it instead. ``tests/test_mutants.py``
fails when a MUST of the spec has no entry here, when a quote no longer occurs in the spec, or
when a named mutant does not exist: a new MUST comes with a mutant and a vector that kills it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REQUIREMENTS", "SPEC_FILES", "Requirement"]

#: The spec files whose MUSTs are covered (the trust-store rules are signing.md §6.1).
SPEC_FILES = ("packet-1.1.md", "signing.md")


@dataclass(frozen=True)
class Requirement:
    """One MUST of the spec: where, a quote holding it, and the mutants or test that cover it."""

    file: str
    quote: str
    mutants: tuple[str, ...] = ()
    tested_by: str = ""


def _r(file: str, quote: str, *mutants: str, tested_by: str = "") -> Requirement:
    return Requirement(file, quote, tuple(mutants), tested_by)


P, S = "packet-1.1.md", "signing.md"

REQUIREMENTS: tuple[Requirement, ...] = (
    # ------------------------------------------------------------------ packet-1.1.md
    _r(
        P,
        'The key words "MUST", "MUST NOT"',
        tested_by="not a behaviour: the BCP 14 boilerplate names the key words",
    ),
    # This MUST makes every rule the spec states with a code normative (the tables of §3-§10
    # say "... is CODE" without repeating MUST): the mutants of those rules are listed here.
    _r(
        P,
        "A reader MUST report the code this document names for a failure.",
        "cbor-indefinite-code",
        "version-format-text",
        "schema-nonfinite-code",
        "json-tensor-data-name",
        "signer-no-alg-code",
        "cose-unsigned",
        "body-depth",
        "dangling-protected",
        "dangling-step",
        "data-length",
        "data-padding-between",
        "data-padding-end",
        "derivation-edge-count",
        "descriptor-length",
        "descriptor-offsets",
        "descriptor-scale",
        "digest-bf16",
        "digest-f16",
        "digest-f32",
        "digest-i8",
        "dimension-variances",
        "i8-minus-128",
        "isa-cycle",
        "json-base64-alphabet",
        "json-base64-padding",
        "json-base64-strict",
        "json-depth",
        "json-duplicate-member",
        "json-lone-surrogate",
        "json-tensor-data-length",
        "limit-body-bytes",
        "limit-body-items",
        "limit-body-items-keys",
        "limit-concepts",
        "limit-edges",
        "limit-packet-bytes",
        "limit-signature-bytes",
        "limit-tensor-bytes",
        "limit-trace-steps",
        "nonfinite-f16-nan",
        "nonfinite-f32-inf",
        "operators-dangling-target",
        "schema-json-data-model",
        "schema-pattern-end",
        "schema-text-keys",
        "unique-anchor-ids",
        "unknown-relation",
    ),
    _r(
        P,
        "free-form values included, MUST lie within the range of `int`",
        "schema-int-range",
    ),
    _r(P, "Numbers MUST be finite (`NONFINITE_VALUE`).", "schema-nonfinite-code", "json-nan"),
    _r(P, "(they are part of the body) but MUST NOT act on them.", "relation-private-dropped"),
    _r(
        P,
        "and MUST NOT apply a laxer one unless its operator explicitly overrides it.",
        tested_by="tests/test_ingest.py::test_effective_policy_is_the_stricter: a student's "
        "policy, not a reader's",
    ),
    _r(
        P,
        "A reader MUST reject, with these codes:",
        "envelope-pad-length",
        "envelope-pad-zeros",
        "envelope-trailing-bytes",
        "envelope-bstr-minimal",
        "envelope-tag",
        "signatures-entry-wellformed",
        "signatures-entry-depth",
        "signatures-entry-tags-not-levels",
        "signatures-entry-tag-interpreted",
        "cbor-reserved-info",
        "cbor-simple-below-32",
    ),
    _r(
        P,
        "A reader MUST decode the body, re-encode the decoded value under these rules",
        "cbor-key-order",
        "cbor-int-minimal-negative",
        "cbor-int-minimal-eight",
        "cbor-length-minimal",
        "cbor-float-shortest",
        "cbor-float-shortest-64",
        "cbor-nan-payload",
        "body-tags",
        "body-reencode-number-field",
        "cbor-duplicate-keys",
        "cbor-duplicate-keys-text-only",
        "cbor-duplicate-keys-scalars-only",
        "cbor-duplicate-keys-by-value",
        "cbor-utf8",
        "body-trailing-bytes",
    ),
    _r(
        P,
        "a field of type *integer* MUST be written as a JSON integer",
        "json-integer-spelling",
        "schema-strict-integer",
    ),
    _r(P, "readers MUST accept any member order and whitespace.", "json-member-order"),
    _r(
        P,
        "readers MUST run before ingesting a packet whose `safety.require_signature` is true",
        tested_by="tests/test_ingest.py::test_unsigned_packet_is_refused_by_default: the "
        "ingestion trust gate",
    ),
    _r(
        P,
        "every reader MUST accept: a packet within them MUST NOT be rejected for its size.",
        "limit-at-bound",
        "limit-body-items-at-bound",
        "json-items-beside-body-bound-low",
        "body-depth-empty-container",
        "cose-max-signers",
    ),
    _r(
        P,
        "the value of the top-level `body` member MUST NOT hold more than `max_body_items` items",
        "json-body-items",
    ),
    _r(
        P,
        "everything else in the text together MUST NOT hold more than 2 × `max_tensors` + 8 items",
        "json-items-beside-body",
        "json-items-beside-body-bound-high",
        "json-items-beside-body-bound-low",
    ),
    _r(
        P,
        "`offset + length`) MUST be checked for overflow",
        "descriptor-length-overflow",
    ),
    _r(
        P,
        "A 1.x reader MUST accept a packet of any version `1.MINOR` and MUST reject any other "
        "major version",
        "version-major",
        "version-minor",
    ),
    _r(
        P,
        "It MUST NOT add body fields, dtypes or relations",
        tested_by="not a behaviour: a rule for the specification's editors",
    ),
    _r(
        P,
        "that a reader does not understand MUST make the reader reject the packet",
        "critical-extension",
    ),
    _r(
        P,
        "that it does not understand MUST be ignored, and preserved",
        "extension-noncritical-dropped",
    ),
    _r(
        P,
        "a reader MUST NOT report a later step's code when an earlier step fails.",
        "order-version-after-schema",
        "schema-nonfinite-code",
        "cbor-nan-payload",
    ),
    _r(P, "it MUST NOT skip it on input it has not verified.", "data-unchecked"),
    # ------------------------------------------------------------------ signing.md
    _r(
        S,
        "The key words MUST, MUST NOT",
        tested_by="not a behaviour: the BCP 14 boilerplate names the key words",
    ),
    _r(
        S,
        "Signers MUST produce Ed25519 signatures as RFC 8032 §5.1.6 specifies.",
        tested_by="tests/test_signing.py::test_spec_example_is_reproduced: signers, not verifiers",
    ),
    _r(
        S,
        "Verifiers MUST apply the checks below",
        "key-subgroup",
        "key-unchecked",
        "ed25519-cofactored",
    ),
    _r(
        S,
        "A public key MUST be rejected with `KEY_MALFORMED` when",
        "key-subgroup",
        "key-unchecked",
    ),
    _r(S, "A signature MUST be rejected with `SIGNATURE_INVALID` when", "ed25519-cofactored"),
    _r(
        S,
        "the encoding of the point [S]B − [k]A MUST equal the 32 bytes of R",
        "ed25519-cofactored",
    ),
    _r(S, "The body protected header MUST be exactly the 30 bytes shown", "cose-body-protected"),
    _r(S, "The body unprotected header MUST be the empty map.", "cose-body-unprotected"),
    _r(S, "The payload MUST be a 32-byte byte string", "cose-payload-attached"),
    _r(
        S,
        "The signers array MUST hold at least one COSE_Signature. A verifier MUST refuse more "
        "than 256",
        "cose-no-signers",
        "cose-max-signers",
        "cose-max-signers-first",
    ),
    _r(S, "The unprotected header MUST be the empty map:", "signer-unprotected"),
    _r(S, "The `kid` MUST equal SHA-256 of that key", "signer-kid"),
    _r(
        S,
        "MUST be deterministically encoded",
        "cose-deterministic",
        "cose-protected-deterministic",
    ),
    _r(
        S,
        "To sign a packet with key K a signer MUST:",
        tested_by="tests/test_signing.py::test_signing_refuses_to_extend_a_broken_set: signers, "
        "not verifiers",
    ),
    _r(
        S,
        "A secret key file MUST be created with permissions 0600",
        tested_by="tests/test_signing.py::test_key_files: key files are not part of the protocol",
    ),
    _r(
        S,
        "Readers MUST refuse, with `KEY_MALFORMED`, a key map with labels other than those listed",
        "signer-cose-key-params",
        tested_by="tests/test_signing.py::test_key_files: the same COSE_Key rules in key files",
    ),
    _r(
        S,
        "The document MUST have the single member `keys`, a list. Each entry MUST have",
        "trust-top-members",
        "trust-entry-members",
        "trust-kty",
        "trust-alg-use",
        "trust-name-blank",
        "trust-name-length",
        "trust-x-padding",
        "trust-x-alphabet",
        "trust-x-canonical",
        "trust-kid",
        "trust-time-zone",
        "trust-time-case",
        "trust-time-exists",
        "trust-time-leap-second",
        "trust-window-order",
        "trust-conflicting-duplicate",
        "ref-trust-duplicate-member",
    ),
    _r(S, "k MUST be at least 1.", "min-signers-zero"),
    _r(
        S,
        "MUST lie within `[not_before, not_after]`, bounds included.",
        "window-signing-time-only",
        "window-now-only",
        "window-not-before-now-only",
        "window-not-before-exclusive",
        "window-not-after-exclusive",
        "window-fraction-rounded",
        "ref-window-verification-time",
    ),
    _r(
        S,
        "A verifier MUST perform the following steps.",
        "k-counts-signatures",
        "k-ignores-packet",
        "k-packet-lowers",
        "k-untrusted-counts",
        "untrusted-signature-unchecked",
        "cose-tag-98",
        "cose-unsigned",
        "signer-alg-hashable",
        "signer-extra-label",
        "signer-cwt-claims",
        "signer-time-range",
        "signer-kccs",
        "ref-distinct-signers",
        "ref-signatures-entry-tags",
    ),
    _r(S, "the payload MUST equal SHA-256 of the body bytes", "cose-payload-mismatch"),
    _r(S, "it MUST NOT then report the packet as verified.", "data-unchecked"),
    _r(
        S,
        "otherwise signers MUST refuse to sign it and verifiers MUST report "
        "`PROVENANCE_INCOMPLETE`",
        "provenance-blank-ascii",
        "provenance-blank-ecma",
        "provenance-task-name",
        "provenance-parameters",
        "provenance-task-inputs",
        "provenance-concept-probes",
        "provenance-parents",
    ),
)
