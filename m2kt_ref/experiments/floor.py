"""Information floors: the fewest label-equivalents that could reveal what a task's answers need.

A result is judged as a multiple of its task's floor (spec/algorithms.md §5.4). The floor counts
the independent facts the answers depend on, and what one labelled row, with the per-step hints
its trace carries, can reveal of them:

- ``chain``: the answers depend on ``n × functions`` transitions (a symbol under a function); a
  composition of up to ``k`` functions with a hint at every step reveals at most ``k`` of them,
  so the floor is ``ceil(n · functions / k)``.
- ``hierarchy``: the answers depend on every node's parent (``nodes − 1`` facts); a row asks one
  query and a one-pass teacher exposes no intermediate hop, so one labelled fact reveals at most
  one parent: the floor is ``nodes − 1``.
- ``modular`` (a single group operation ``+`` or ``−``): a student that knows it is a cyclic group
  still needs where each number sits on the cycle, ``p − 1`` facts, each row revealing at most one
  new position: ``p − 1``. A student without that prior needs the table itself (``p²`` per
  operator); ``*`` is not a shift on one cycle, so with ``*`` the floor is the table's.
"""

from __future__ import annotations

import math
from typing import Any

from m2kt_ref.transfer.tasks import Task

__all__ = ["information_floor"]


def information_floor(task: Task) -> dict[str, Any]:
    """The task's floor and how it was counted.

    Returns:
        ``{"label_equivalents": int, "facts": int, "per_row": int, "rule": str}``.
    """
    o = task.option_dict()
    if task.name == "chain":
        facts = int(o["n"]) * int(o["functions"])
        per_row = int(o["k"])
        rule = "n·functions transitions, at most k revealed per hinted row"
    elif task.name == "hierarchy":
        facts = len(task.nodes) - 1
        per_row = 1
        rule = "one parent per non-root node, one revealed per labelled fact"
    elif task.name == "modular":
        p, ops = int(o["p"]), str(o["ops"])
        if "*" in ops:
            facts, rule = p * p * len(ops), "the operation tables (p² per operator)"
        else:
            facts, rule = p - 1, "each number's position on the cycle (cyclic-group prior)"
        per_row = 1
    else:
        facts, per_row, rule = len(task.problems()), 1, "every problem (no structure assumed)"
    return {
        "label_equivalents": math.ceil(facts / per_row),
        "facts": facts,
        "per_row": per_row,
        "rule": rule,
    }
