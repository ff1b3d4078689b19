"""Experiment presets: task sizes, teachers, students and budgets per family and scale.

``default`` is the scale of docs/results.md (CPU minutes per seed on one thread); ``quick`` runs
the same pipeline on toy sizes in seconds, for the tests. ``--opt KEY=VALUE`` overrides a task
option (``--opt depth=5``) or a setting of :data:`SETTINGS` (``--opt kd_points=4``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.training import TrainConfig

__all__ = ["SETTINGS", "Budget", "ExperimentPreset", "StudentSpec", "resolve_preset"]


@dataclass(frozen=True)
class StudentSpec:
    """A student: ``family`` ``concept`` (the concept-state student of the task) or a net family
    (``transformer``, ``mlp``, ``gru``) with its width and depth."""

    name: str
    family: str
    width: int = 0
    depth: int = 0
    heads: int = 4

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "family": self.family,
            "width": self.width,
            "depth": self.depth,
            "heads": self.heads,
        }


@dataclass(frozen=True)
class Budget:
    """Optimisation of every generic student (AdamW, warm-up then cosine; ``transfer.distill``).

    Every method that trains a generic student (KD at each grid point, the same-prior control,
    KD on M2KT's inputs, self-distillation) runs once per weight decay in ``weight_decays``, for
    ``steps`` steps, evaluating every ``eval_every`` steps; its figure is the **best test
    accuracy along those runs**. That is the budget a user tuning each point would find, at the
    most (it selects on the test set), which makes every comparison with KD conservative.
    """

    steps: int
    lr: float = 3e-3
    batch_size: int = 128
    eval_every: int = 250
    weight_decays: tuple[float, ...] = (0.1, 1.0)
    warmup_steps: int = 20

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "steps": self.steps,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
            "weight_decays": list(self.weight_decays),
            "warmup_steps": self.warmup_steps,
            "selection": "best test accuracy over evaluations and weight decays (oracle)",
        }


@dataclass(frozen=True)
class ExperimentPreset:
    """Everything a run needs besides the task name, seeds and device.

    ``synthetic_rows`` is how many inputs a generic student is self-distilled on (None: every
    problem outside the test split, in a seeded order; they carry no label-equivalent).
    ``concept_controls`` trains the concept-state student on rows for its controls and its KD
    curve; a taxonomy of a thousand nodes makes that cost hours on a CPU, so the depth curve of
    docs/results.md turns it off beyond the default size and says so.
    """

    task_options: dict[str, Any]
    teacher_net: dict[str, Any]
    teacher_train: TrainConfig
    train_fraction: float
    test_fraction: float
    students: tuple[StudentSpec, ...]
    budget: Budget
    packet: dict[str, Any] = field(default_factory=dict)
    concept_steps: int = 3000
    kd_points: int = 6
    synthetic_rows: int | None = None
    kd_temperature: float = 2.0
    teacher_seed: int = 0
    ablations: bool = True
    warm_start_kd: bool = False
    concept_controls: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form of the settings a merge must find equal."""
        return {
            "task_options": self.task_options,
            "teacher_net": self.teacher_net,
            "teacher_train": self.teacher_train.to_dict(),
            "train_fraction": self.train_fraction,
            "test_fraction": self.test_fraction,
            "students": {s.name: s.to_dict() for s in self.students},
            "budget": self.budget.to_dict(),
            "packet": self.packet,
            "concept_steps": self.concept_steps,
            "kd_points": self.kd_points,
            "synthetic_rows": self.synthetic_rows,
            "kd_temperature": self.kd_temperature,
            "teacher_seed": self.teacher_seed,
            "ablations": self.ablations,
            "warm_start_kd": self.warm_start_kd,
            "concept_controls": self.concept_controls,
        }


_CONCEPT = StudentSpec("concept-state", "concept")

PRESETS: dict[tuple[str, str], ExperimentPreset] = {
    # Chain: the GRU teacher applies the functions in reading order, so its readout names the
    # intermediate symbol after every function (99 % of steps): traces with step hints.
    ("chain", "default"): ExperimentPreset(
        {"n": 16, "functions": 3, "k": 4},
        {"family": "gru", "width": 64, "depth": 1},
        TrainConfig(steps=3000, lr=3e-3, weight_decay=1.0, eval_every=100, target_accuracy=0.99),
        train_fraction=0.5,
        test_fraction=0.3,
        students=(
            _CONCEPT,
            StudentSpec("gru-w64-d1", "gru", 64, 1),
            StudentSpec("transformer-w64-d2", "transformer", 64, 2),
        ),
        budget=Budget(steps=3000),
        packet={"trace_selection": "cover", "operators": False},
        kd_points=8,
    ),
    # Hierarchy: a one-pass transformer exposes no intermediate hop; the packet carries each
    # node's parent as the teacher answers it (operator probes at every level).
    ("hierarchy", "default"): ExperimentPreset(
        {"depth": 4, "branching": 3},
        {"family": "transformer", "width": 64, "depth": 1, "heads": 4},
        # a fixed budget: the reserve (the validation set) is only 64 rows at this size, too few
        # to stop on (it stopped a first run at step 50 with 0.953 on the test set)
        TrainConfig(steps=1000, lr=3e-3, weight_decay=1.0, eval_every=50),
        train_fraction=0.6,
        test_fraction=0.33,
        students=(
            _CONCEPT,
            StudentSpec("transformer-w64-d2", "transformer", 64, 2),
            StudentSpec("mlp-w128-d2", "mlp", 128, 2),
        ),
        budget=Budget(steps=3000),
        packet={"trace_selection": "cover", "operators": True},
        kd_points=8,
    ),
    # Modular: no concept-state student; the measured question is whether the teacher's concept
    # geometry written into a student cuts what KD needs (``warm_start_kd``).
    ("modular", "default"): ExperimentPreset(
        {"p": 97, "ops": "+"},
        {"family": "mlp", "width": 256, "depth": 1},
        TrainConfig(
            steps=4000,
            lr=3e-3,
            weight_decay=1.0,
            betas=(0.9, 0.98),
            warmup_steps=10,
            eval_every=100,
            target_accuracy=0.999,
        ),
        train_fraction=0.7,
        test_fraction=0.2,
        students=(StudentSpec("mlp-w256-d1", "mlp", 256, 1),),
        budget=Budget(steps=3000, batch_size=512, eval_every=100, weight_decays=(1.0,)),
        packet={"trace_selection": "random", "traces": 16, "operators": False},
        kd_points=10,
        warm_start_kd=True,
    ),
}

_QUICK_TEACHER = TrainConfig(
    steps=300, lr=1e-2, weight_decay=0.1, eval_every=25, target_accuracy=1.0
)
for _name, _opts, _net, _packet, _warm in (
    (
        "chain",
        {"n": 4, "functions": 2, "k": 2},
        {"family": "gru", "width": 16, "depth": 1},
        {},
        False,
    ),
    (
        "hierarchy",
        {"depth": 2, "branching": 2},
        {"family": "transformer", "width": 16, "depth": 1, "heads": 2},
        {"operators": True},
        False,
    ),
    (
        "modular",
        {"p": 5, "ops": "+"},
        {"family": "mlp", "width": 16, "depth": 1},
        {"trace_selection": "random", "traces": 2},
        True,
    ),
):
    PRESETS[(_name, "quick")] = ExperimentPreset(
        _opts,
        _net,
        _QUICK_TEACHER,
        train_fraction=0.5,
        test_fraction=0.3,
        students=(
            *((_CONCEPT,) if _name != "modular" else ()),
            StudentSpec("mlp-w16-d1", "mlp", 16, 1),
        ),
        budget=Budget(steps=20, batch_size=16, eval_every=10, weight_decays=(0.1,)),
        packet={"trace_selection": "cover", **_packet},
        concept_steps=30,
        kd_points=2,
        synthetic_rows=8,
        warm_start_kd=_warm,
    )

#: Settings ``--opt`` may override, with their types (anything else is a task option).
SETTINGS: dict[str, type] = {
    "steps": int,
    "eval_every": int,
    "concept_steps": int,
    "kd_points": int,
    "synthetic_rows": int,
    "teacher_seed": int,
    "ablations": bool,
    "trace_selection": str,
    "operators": bool,
    "concept_controls": bool,
    "students": str,
}


def _coerce(key: str, tp: type, value: Any) -> Any:
    if not isinstance(value, str):
        return tp(value)
    if tp is bool:
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"--opt {key}={value!r}: expected a boolean")
    try:
        return tp(value)
    except ValueError:
        raise UsageError(f"--opt {key}={value!r}: expected {tp.__name__}") from None


def resolve_preset(
    task_name: str, scale: str, options: dict[str, Any]
) -> tuple[ExperimentPreset, dict[str, Any]]:
    """The preset for ``task_name`` at ``scale`` with ``options`` applied.

    Returns:
        ``(preset, task_options)``: settings of :data:`SETTINGS` are applied to the preset,
        every other option is a task option (validated when the task is made).

    Raises:
        UsageError: ``USAGE`` for an unknown task or scale, or a setting of the wrong type.
    """
    try:
        preset = PRESETS[(task_name, scale)]
    except KeyError:
        raise UsageError(
            f"no experiment preset for task {task_name!r} at scale {scale!r}"
        ) from None
    task_opts = dict(preset.task_options)
    changes: dict[str, Any] = {}
    budget = preset.budget
    packet = dict(preset.packet)
    for key, raw in options.items():
        if key not in SETTINGS:
            task_opts[key] = raw
            continue
        value = _coerce(key, SETTINGS[key], raw)
        if key in ("steps", "eval_every"):
            budget = replace(budget, **{key: value})
        elif key == "students":
            keep = [s.strip() for s in value.split(",") if s.strip()]
            unknown = sorted(set(keep) - {s.name for s in preset.students})
            if unknown or not keep:
                names = ", ".join(s.name for s in preset.students)
                raise UsageError(f"--opt students: unknown {unknown or 'empty'}; known: {names}")
            changes["students"] = tuple(s for s in preset.students if s.name in keep)
        elif key in ("trace_selection", "operators"):
            packet[key] = value
        else:
            changes[key] = value
    return replace(preset, budget=budget, packet=packet, **changes), task_opts
