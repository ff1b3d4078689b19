"""Symbolic task families and their registry (numpy only; no torch).

Families: ``modular`` (a op b mod p), ``hierarchy`` (a generated taxonomy), ``chain``
(composition of permutations). See ``docs/teachers.md`` for the row layouts, concepts and
relations of each.
"""

from __future__ import annotations

from typing import Any

from m2kt_ref.errors import TaskError, TaskOptionError, UnknownTaskError
from m2kt_ref.transfer.tasks import base
from m2kt_ref.transfer.tasks.base import *  # noqa: F403  (base.__all__: the core types)
from m2kt_ref.transfer.tasks.base import Task
from m2kt_ref.transfer.tasks.chain import ChainTask
from m2kt_ref.transfer.tasks.hierarchy import HierarchyTask
from m2kt_ref.transfer.tasks.modular import ModularTask

#: Registered task families by name.
TASKS: dict[str, type[Task]] = {
    ModularTask.name: ModularTask,
    HierarchyTask.name: HierarchyTask,
    ChainTask.name: ChainTask,
}


def make_task(name: str, **options: Any) -> Task:
    """Instantiate a registered task family.

    Args:
        name: a key of :data:`TASKS`.
        **options: task options; strings are coerced to the option's declared type, so
            ``make_task("modular", p="31")`` equals ``make_task("modular", p=31)``.

    Returns:
        The task, its options validated. Building it is cheap: problems are enumerated on
        first use.

    Raises:
        UnknownTaskError: ``USAGE`` when ``name`` is not registered.
        TaskOptionError: ``USAGE`` when an option is unknown, mistyped or out of range.

    Example:
        >>> import m2kt_ref
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k="3")    # text is coerced
        >>> task.name, task.option_dict()
        ('chain', {'n': 8, 'functions': 2, 'k': 3, 'structure_seed': 0})
        >>> try:
        ...     mt.make_task("chain", depth=2)
        ... except m2kt_ref.UsageError as exc:   # TaskOptionError is a UsageError
        ...     print(type(exc).__name__, exc.code)
        TaskOptionError USAGE
    """
    try:
        cls = TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}"
        ) from None
    return cls(**options)


def describe_tasks() -> list[dict[str, Any]]:
    """:meth:`Task.describe` of every registered family."""
    return [cls.describe() for cls in TASKS.values()]


__all__ = [
    *base.__all__,
    "TASKS",
    "ChainTask",
    "HierarchyTask",
    "ModularTask",
    "TaskError",
    "TaskOptionError",
    "UnknownTaskError",
    "describe_tasks",
    "make_task",
]
