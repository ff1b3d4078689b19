"""The algorithms of M2KT (needs the ``torch`` extra): teachers, generation, alignment, ingestion.

``import m2kt_ref.transfer`` gives one transfer end to end; the format it reads and writes is
:mod:`m2kt_ref`. Task families and nets are small and built in, so every step runs on a CPU.

Example:
    One transfer, teacher to student, at toy size (a real teacher comes from
    :func:`train_teacher` with its default scale, or ``m2kt train-teacher``):

    >>> import m2kt_ref
    >>> import m2kt_ref.transfer as mt
    >>> task = mt.make_task("chain", n=8, functions=2, k=3)
    >>> run = mt.train_teacher(task, scale="quick", train_config=mt.TrainConfig(steps=5))
    >>> key = m2kt_ref.SigningKey(bytes(range(32)))       # SigningKey.generate() in practice
    >>> packet = mt.generate_from_model(run.model, task, traces=4, created=0, key=key).packet
    >>> blob = m2kt_ref.encode(packet)                    # what travels
    >>> student, _, _ = mt.init_student(task, family="mlp", width=12, depth=1)
    >>> trust = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(key.public_key, "teacher-lab")])
    >>> result = mt.ingest(m2kt_ref.decode(blob), student, task, mt.IngestConfig(steps=5),
    ...                    trust=trust)
    >>> result.decision
    'accepted'
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from m2kt_ref.transfer.device import resolve_device
    from m2kt_ref.transfer.hooks import HiddenStateReader, LayerTap
    from m2kt_ref.transfer.model_dir import (
        ModelDir,
        load_model_dir,
        save_model_dir,
        state_dict_digest,
        weights_digest,
    )
    from m2kt_ref.transfer.nets import NetConfig, build_model
    from m2kt_ref.transfer.student.align import AlignmentMap, fit_alignment
    from m2kt_ref.transfer.student.anchors import align_packet
    from m2kt_ref.transfer.student.config import IngestConfig
    from m2kt_ref.transfer.student.ingest import IngestResult, ingest
    from m2kt_ref.transfer.tasks import Task, make_task
    from m2kt_ref.transfer.teacher.generate import (
        GenerationResult,
        generate_from_model,
        generate_packet,
    )
    from m2kt_ref.transfer.teachers import TeacherRun, init_student, train_teacher
    from m2kt_ref.transfer.training import TrainConfig, evaluate, train_model

# Imported on first use (PEP 562), so ``m2kt_ref.transfer.tasks`` (numpy only) stays torch-free.
_LAZY = {
    "AlignmentMap": "m2kt_ref.transfer.student.align",
    "GenerationResult": "m2kt_ref.transfer.teacher.generate",
    "HiddenStateReader": "m2kt_ref.transfer.hooks",
    "IngestConfig": "m2kt_ref.transfer.student.config",
    "IngestResult": "m2kt_ref.transfer.student.ingest",
    "LayerTap": "m2kt_ref.transfer.hooks",
    "ModelDir": "m2kt_ref.transfer.model_dir",
    "NetConfig": "m2kt_ref.transfer.nets",
    "Task": "m2kt_ref.transfer.tasks",
    "TeacherRun": "m2kt_ref.transfer.teachers",
    "TrainConfig": "m2kt_ref.transfer.training",
    "align_packet": "m2kt_ref.transfer.student.anchors",
    "build_model": "m2kt_ref.transfer.nets",
    "evaluate": "m2kt_ref.transfer.training",
    "fit_alignment": "m2kt_ref.transfer.student.align",
    "generate_from_model": "m2kt_ref.transfer.teacher.generate",
    "generate_packet": "m2kt_ref.transfer.teacher.generate",
    "ingest": "m2kt_ref.transfer.student.ingest",
    "init_student": "m2kt_ref.transfer.teachers",
    "load_model_dir": "m2kt_ref.transfer.model_dir",
    "make_task": "m2kt_ref.transfer.tasks",
    "resolve_device": "m2kt_ref.transfer.device",
    "save_model_dir": "m2kt_ref.transfer.model_dir",
    "state_dict_digest": "m2kt_ref.transfer.model_dir",
    "train_model": "m2kt_ref.transfer.training",
    "train_teacher": "m2kt_ref.transfer.teachers",
    "weights_digest": "m2kt_ref.transfer.model_dir",
}


__all__ = [
    "AlignmentMap",
    "GenerationResult",
    "HiddenStateReader",
    "IngestConfig",
    "IngestResult",
    "LayerTap",
    "ModelDir",
    "NetConfig",
    "Task",
    "TeacherRun",
    "TrainConfig",
    "align_packet",
    "build_model",
    "evaluate",
    "fit_alignment",
    "generate_from_model",
    "generate_packet",
    "ingest",
    "init_student",
    "load_model_dir",
    "make_task",
    "resolve_device",
    "save_model_dir",
    "state_dict_digest",
    "train_model",
    "train_teacher",
    "weights_digest",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
