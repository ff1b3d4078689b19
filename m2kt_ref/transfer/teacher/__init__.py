"""Teacher side: read a trained model's states and turn them into a knowledge packet.

``geometry`` holds the numpy primitives (concept statistics, similarity, clusters, decoding);
``generate`` runs the teacher through a :class:`~m2kt_ref.transfer.hooks.HiddenStateReader` and
assembles the packet. The curated API is re-exported from :mod:`m2kt_ref.transfer`.
"""

__all__: list[str] = []
