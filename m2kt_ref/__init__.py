"""Reference implementation of Model-to-Model Knowledge Transmission (M2KT).

The format half (errors, tensors, models, codec, schema validation, signing) imports without
torch; the algorithms (tasks, teachers, generation, alignment, ingestion, experiments) need the
``torch`` extra.
"""

__version__ = "0.1.0"
