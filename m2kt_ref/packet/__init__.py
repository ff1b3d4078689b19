"""The packet format, torch-free: everything a reader, verifier or producer of packets needs.

Layers, each importing only the ones above it: ``limits`` and ``tensors`` (dtypes, zero-copy
views, digests) -> ``model`` (the pydantic data model) and ``rules`` (semantic checks) ->
``codec`` (deterministic CBOR and the JSON form) with ``files`` (mapped reads, atomic writes) ->
``schema`` (validation against the shipped JSON Schemas) -> ``keys``, ``trust``, ``signing``
(COSE_Sign / Ed25519, trust stores, k-of-n) -> ``gate`` (may a packet be ingested) and
``receipt`` (the signed ingestion report). ``demo`` builds a small packet with every section.
The curated API is re-exported from :mod:`m2kt_ref`.
"""

__all__: list[str] = []
