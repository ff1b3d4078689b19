"""Teacher-side trace selection and decoding, concept-state students and the answer-key reader,
each against an independent reference on small tasks (1 torch thread, fixed seeds)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from m2kt_ref.errors import UsageError  # noqa: E402
from m2kt_ref.experiments.answer_key import AnswerKeyReader  # noqa: E402
from m2kt_ref.experiments.methods import control_rows  # noqa: E402
from m2kt_ref.transfer import generate_from_model, init_student, make_task  # noqa: E402
from m2kt_ref.transfer.student.concept_state import (  # noqa: E402
    StepwiseConceptStudent,
    TaxonomyConceptStudent,
    build_concept_student,
    fit_from_packet,
    fit_on_rows,
)
from m2kt_ref.transfer.teacher.readout import step_positions  # noqa: E402
from m2kt_ref.transfer.teacher.selection import (  # noqa: E402
    greedy_cover,
    minimum_cover,
    select_traces,
    transition_units,
)
from m2kt_ref.transfer.training import evaluate  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


# --------------------------------------------------------------------------- selection


def _smallest_cover(sets):
    universe = set().union(*sets)
    for k in range(len(sets) + 1):
        for combo in itertools.combinations(range(len(sets)), k):
            if set().union(*(sets[i] for i in combo)) == universe:
                return k
    raise AssertionError


def test_greedy_cover_covers_everything_within_its_bound():
    rng = np.random.default_rng(0)
    for _ in range(20):
        sets = [
            frozenset(rng.choice(12, size=rng.integers(1, 5), replace=False).tolist())
            for _ in range(9)
        ]
        chosen = greedy_cover(sets, rng.permutation(len(sets)))
        assert set().union(*(sets[i] for i in chosen)) == set().union(*sets)
        assert len(set(chosen)) == len(chosen)
        best = _smallest_cover(sets)
        assert best <= len(chosen) <= best * (1 + np.log(4))  # H(max set size) bound


def test_minimum_cover_is_the_smallest_cover():
    rng = np.random.default_rng(1)
    for _ in range(20):
        sizes = rng.integers(1, 5, size=9)
        sets = [frozenset(rng.choice(12, size=s, replace=False).tolist()) for s in sizes]
        chosen = minimum_cover(sets, rng.permutation(len(sets)))
        assert set().union(*(sets[i] for i in chosen)) == set().union(*sets)
        assert len(chosen) == _smallest_cover(sets)
    assert minimum_cover([frozenset(), frozenset()], np.arange(2)) == []


def test_select_traces_random_and_fill():
    sets = [frozenset({i % 3}) for i in range(10)]
    cover = select_traces("cover", sets, None, 0)
    assert len(cover.indices) == 3 and cover.covered == cover.exercised == 3
    filled = select_traces("cover", sets, 5, 0)
    assert len(filled.indices) == 5 and filled.indices[:3] == cover.indices
    rnd = select_traces("random", sets, 4, 1)
    assert len(rnd.indices) == 4 and rnd == select_traces("random", sets, 4, 1)
    with pytest.raises(UsageError):
        select_traces("random", sets, None, 0)
    with pytest.raises(UsageError):
        select_traces("best", sets, 2, 0)


def test_transition_units_follow_the_decoded_states():
    row = [7, 20, 21, 0, 0]  # operand token 7, two operator tokens, padding
    positions = step_positions(row, 5)
    assert positions == [1, 2]
    classes = [-1, 3, 4, -1, -1]
    assert transition_units(row, classes, positions, {7: 2}) == {(2, 20), (3, 21)}
    # an untrusted step breaks the chain: the transition out of it is not counted
    confident = [True, False, True, True, True]
    assert transition_units(row, classes, positions, {7: 2}, confident=confident) == set()
    assert transition_units(row, classes, positions, {}) == {(3, 21)}
    assert step_positions([3, 4, 5], 1) == [0]


# --------------------------------------------------------------------------- students


class _Oracle(torch.nn.Module):
    """A "teacher" that knows the chain tables, with a readout the generator can decode."""

    def __init__(self, task):
        super().__init__()
        self.task = task
        self.hidden = torch.nn.Identity()

    def forward(self, rows):
        t = self.task
        n = t.options.n
        y = (rows[:, 0] - 1).clamp(0, n - 1)  # concept probes of operators start empty
        states = [torch.nn.functional.one_hot(y, n).float()]
        for p in range(1, rows.shape[1]):
            tok = rows[:, p]
            fn = (tok - t._fn(0)).clamp(min=0)
            table = torch.as_tensor(t.tables)
            nxt = table[fn, y]
            y = torch.where(tok != 0, nxt, y)
            states.append(torch.nn.functional.one_hot(y, n).float())
        h = self.hidden(torch.stack(states, 1) * 10.0)
        return h[:, -1]


def _chain_packet(task, **kw):
    oracle = _Oracle(task)
    return generate_from_model(
        oracle,
        task,
        layer="hidden",
        readout=lambda s: s,
        created=0,
        **kw,
    )


def test_stepwise_student_composes_from_covering_traces_and_hints():
    task = make_task("chain", n=6, functions=2, k=3)
    gen = _chain_packet(task)
    sel = gen.stats["trace_selection"]
    assert sel["covered"] == sel["exercised"] == 12  # every (symbol, function) transition
    assert gen.stats["traces"] <= 12  # at most one row per transition, at least 4 (3 per row)
    student = build_concept_student(task, seed=0)
    assert isinstance(student, StepwiseConceptStudent)
    fit = fit_from_packet(student, gen.packet, task, steps=1500)
    assert (
        fit.task_rows == gen.stats["traces"] and fit.step_labels == gen.stats["trace_step_labels"]
    )
    ps = task.problems()
    assert evaluate(student, ps.inputs, ps.targets) == 1.0  # every composition, up to k
    reader = AnswerKeyReader(gen.packet, task)
    assert reader.accuracy(ps.inputs, ps.targets) == 1.0  # the packet carries the answers
    # the same rows without the hints do not teach the operation
    blind = build_concept_student(task, seed=0)
    fit_from_packet(blind, gen.packet, task, steps=1500, use_hints=False)
    assert evaluate(blind, ps.inputs, ps.targets) < 0.8
    rows = control_rows(gen.packet, task)
    assert len(rows) == gen.stats["traces"]


def test_taxonomy_student_learns_the_tree_from_is_a_edges():
    task = make_task("hierarchy", depth=3, branching=2)
    teacher, _, _ = init_student(task, family="mlp", width=8, depth=1)
    gen = generate_from_model(teacher, task, created=0, declare=True, traces=0)
    student = build_concept_student(task, seed=0)
    assert isinstance(student, TaxonomyConceptStudent)
    fit = fit_from_packet(student, gen.packet, task)
    assert fit.declared_facts == len(task.nodes) - 1 and fit.operator_facts == 0
    ps = task.problems()
    assert evaluate(student, ps.inputs, ps.targets) == 1.0  # is-a and ancestor@ queries
    assert AnswerKeyReader(gen.packet, task).accuracy(ps.inputs, ps.targets) == 1.0
    # taught only the rows behind the edges, the same student learns less
    rows = control_rows(gen.packet, task)
    assert len(rows) == len(task.nodes) - 1
    truth = {
        r.tobytes(): int(y) for r, y in zip(ps.inputs.astype(np.int64), ps.targets, strict=True)
    }
    scratch = build_concept_student(task, seed=0)
    fit_on_rows(scratch, rows, np.array([truth[r.tobytes()] for r in rows]))
    assert 0.0 <= evaluate(scratch, ps.inputs, ps.targets) <= 1.0
    # a packet without is_a edges leaves it nothing to learn: a clear error, no fake result
    bare = generate_from_model(teacher, task, created=0, traces=0)
    with pytest.raises(UsageError):
        fit_from_packet(build_concept_student(task), bare.packet, task)


def test_no_concept_student_for_modular():
    with pytest.raises(UsageError):
        build_concept_student(make_task("modular", p=5))


def test_answer_key_reader_falls_back_when_the_packet_is_silent():
    task = make_task("hierarchy", depth=2, branching=2)
    teacher, _, _ = init_student(task, family="mlp", width=8, depth=1)
    bare = generate_from_model(teacher, task, created=0, traces=0)
    ps = task.problems()
    reader = AnswerKeyReader(bare.packet, task, fallback=0)
    assert {reader.answer(r) for r in ps.inputs} == {0}
