"""Reference implementation of Model-to-Model Knowledge Transmission (M2KT): the packet format.

``import m2kt_ref`` is the format half, torch-free: read, write, validate, sign and verify
knowledge packets. The algorithms (teachers, generation, alignment, ingestion) are
``import m2kt_ref.transfer`` and need the ``torch`` extra.

Example:
    >>> import m2kt_ref
    >>> packet = m2kt_ref.demo_packet()
    >>> blob = m2kt_ref.encode(packet)              # deterministic CBOR (RFC 8949 §4.2.1)
    >>> again = m2kt_ref.decode(blob)               # validated; tensors are zero-copy views
    >>> again.packet_id == packet.packet_id and m2kt_ref.encode(again) == blob
    True
"""

__version__ = "0.1.0"

from m2kt_ref.errors import (  # after __version__: modules below read it
    DecodeError,
    FileAccessError,
    IngestError,
    IngestRefusedError,
    LimitError,
    M2ktError,
    SignatureError,
    TensorError,
    UsageError,
    ValidationError,
    VersionError,
)
from m2kt_ref.packet.codec import (
    Packet,
    assemble,
    decode,
    decode_json,
    encode,
    encode_json,
    iter_packet_errors,
    read_packet,
    write_packet,
)
from m2kt_ref.packet.demo import demo_packet
from m2kt_ref.packet.extensions import (
    Derivation,
    OperatorEntry,
    TraceSelection,
    derivation_block,
    operators_block,
    read_derivation,
    read_operators,
)
from m2kt_ref.packet.gate import check_trust
from m2kt_ref.packet.keys import (
    PublicKey,
    SigningKey,
    load_public_key,
    load_signing_key,
    write_key_pair,
)
from m2kt_ref.packet.limits import DEFAULT_LIMITS, Limits
from m2kt_ref.packet.model import PacketBody
from m2kt_ref.packet.receipt import sign_report, verify_receipt
from m2kt_ref.packet.signing import (
    VerificationResult,
    sign_packet,
    verify_file,
    verify_packet,
)
from m2kt_ref.packet.tensors import EncodedTensor
from m2kt_ref.packet.tensors import encode as encode_tensor
from m2kt_ref.packet.trust import TrustedKey, TrustStore
from m2kt_ref.packet.writer import assemble_to_file

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeError",
    "Derivation",
    "EncodedTensor",
    "FileAccessError",
    "IngestError",
    "IngestRefusedError",
    "LimitError",
    "Limits",
    "M2ktError",
    "OperatorEntry",
    "Packet",
    "PacketBody",
    "PublicKey",
    "SignatureError",
    "SigningKey",
    "TensorError",
    "TraceSelection",
    "TrustStore",
    "TrustedKey",
    "UsageError",
    "ValidationError",
    "VerificationResult",
    "VersionError",
    "__version__",
    "assemble",
    "assemble_to_file",
    "check_trust",
    "decode",
    "decode_json",
    "demo_packet",
    "derivation_block",
    "encode",
    "encode_json",
    "encode_tensor",
    "iter_packet_errors",
    "load_public_key",
    "load_signing_key",
    "operators_block",
    "read_derivation",
    "read_operators",
    "read_packet",
    "sign_packet",
    "sign_report",
    "verify_file",
    "verify_packet",
    "verify_receipt",
    "write_key_pair",
    "write_packet",
]
