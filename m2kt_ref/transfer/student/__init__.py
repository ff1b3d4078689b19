"""Student side: align to a packet, ingest it under the composite loss, verify, roll back.

``config`` (every knob), ``view`` (the packet as arrays), ``readout`` (the student's states),
``anchors``, ``align`` and ``align_metrics`` (the Concept Alignment Layer), ``losses`` (the
composite loss terms), ``train_loop`` (the optimisation), ``verify`` and ``safety`` (what is
measured and bounded after), ``ingest`` (the orchestration and its report), ``warm_start``
(writing concept geometry into weights). The curated API is re-exported from
:mod:`m2kt_ref.transfer`.
"""

__all__: list[str] = []
