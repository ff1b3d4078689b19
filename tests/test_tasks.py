"""Task families: determinism, splits without leaks, concepts, probes, relations, traces."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from m2kt_ref.errors import TaskOptionError, UnknownTaskError, UsageError
from m2kt_ref.transfer.tasks import (
    CONCEPT_KINDS,
    PAD_ID,
    RELATIONS,
    TASKS,
    describe_tasks,
    make_task,
    parse_option_pairs,
)

SMALL = {
    "modular": {"p": 11},
    "hierarchy": {"depth": 3, "branching": 3},
    "chain": {"n": 8, "functions": 2, "k": 3},
}


@pytest.fixture(params=sorted(SMALL))
def task(request):
    return make_task(request.param, **SMALL[request.param])


def test_registry_lists_every_family():
    assert set(TASKS) >= {"modular", "hierarchy", "chain"}
    described = describe_tasks()
    json.dumps(described)
    for d in described:
        assert d["name"] in TASKS and d["description"]
        assert all({"name", "type", "default", "help"} <= set(o) for o in d["options"])


def test_tasks_import_without_torch():
    code = (
        "import sys, m2kt_ref.transfer.tasks as t; t.make_task('chain').problems(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_problems_shape_and_ranges(task):
    ps = task.problems()
    assert ps.inputs.dtype == np.int64 and ps.targets.dtype == np.int64
    assert ps.inputs.shape == (len(ps), task.seq_len)
    assert ps.inputs.min() >= 0 and ps.inputs.max() < task.vocab_size
    assert ps.targets.min() >= 0 and ps.targets.max() < task.n_classes
    assert task.vocab[PAD_ID] == "<pad>"
    assert len(ps.row_keys()) == len(ps)  # every row is one problem
    assert len(task.answer_labels) == task.n_classes


def test_deterministic_per_seed(task):
    other = make_task(task.name, **SMALL[task.name])
    assert np.array_equal(task.problems().inputs, other.problems().inputs)
    assert np.array_equal(task.problems().targets, other.problems().targets)
    a, b, c = task.split(3), other.split(3), task.split(4)
    assert np.array_equal(a.train.inputs, b.train.inputs)
    assert np.array_equal(a.test.targets, b.test.targets)
    assert np.array_equal(a.pool.inputs, b.pool.inputs)
    assert not np.array_equal(a.test.inputs, c.test.inputs)
    assert task.concepts() == other.concepts()
    assert task.relations() == other.relations()
    assert task.operator_probes() == other.operator_probes()


def test_split_partitions_without_leak(task):
    sp = task.split(0)
    train, test, reserve, pool = (
        sp.train.row_keys(),
        sp.test.row_keys(),
        sp.reserve.row_keys(),
        sp.pool.row_keys(),
    )
    assert not train & test and not train & reserve and not test & reserve
    assert len(train) + len(test) + len(reserve) == len(task.problems())
    assert pool == train | reserve and not pool & test
    assert len(sp.test) == round(sp.test_fraction * len(task.problems()))


def test_base_facts_always_in_train():
    t = make_task("chain", **SMALL["chain"])
    for seed in range(3):
        train = t.split(seed).train
        assert (train.inputs[:, 2] == PAD_ID).sum() == 8 * 2  # every f_j(x) is in train


def test_split_rejects_bad_fractions(task):
    with pytest.raises(TaskOptionError):
        task.split(0, train_fraction=0.8, test_fraction=0.5)
    with pytest.raises(ValueError):
        task.split(0, train_fraction=0.0)


def test_concepts_and_probes(task):
    concepts = task.concepts()
    ids = [c.id for c in concepts]
    assert len(ids) == len(set(ids))
    problem_rows = task.problems().row_keys()
    for c in concepts:
        assert c.kind in CONCEPT_KINDS and c.label and c.probes
        tokens, positions = c.probe_arrays()
        assert tokens.shape[1] == task.seq_len
        assert tokens.min() >= 0 and tokens.max() < task.vocab_size
        assert ((positions >= 0) & (positions < task.seq_len)).all()
        assert (tokens[np.arange(len(tokens)), positions] != PAD_ID).all()  # reads the concept
        assert not {row.tobytes() for row in tokens} & problem_rows  # probes are not problems
        json.dumps(c.to_dict())


def test_relations_refer_to_concepts(task):
    ids = {c.id for c in task.concepts()}
    rels = task.relations()
    assert rels
    for r in rels:
        assert r.relation in RELATIONS
        assert r.source in ids and r.target in ids
        assert r.context is None or r.context in ids
        assert r.weight > 0
        json.dumps(r.to_dict())


def test_is_a_is_acyclic_tree():
    t = make_task("hierarchy", depth=4, branching=3, structure_seed=7)
    parents: dict[str, list[str]] = {}
    for r in t.relations():
        if r.relation == "is_a":
            parents.setdefault(r.source, []).append(r.target)
    levels = {c.id: c.level for c in t.concepts() if c.id.startswith("node:")}
    assert 30 <= len(levels) <= 500  # tens to hundreds of nodes
    for child, ps in parents.items():
        assert len(ps) == 1 and levels[ps[0]] == levels[child] - 1  # depth strictly decreases
    # DFS cycle check, independent of the level argument
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        state[n] = 1
        for p in parents.get(n, []):
            assert state.get(p) != 1, "cycle"
            if p not in state:
                visit(p)
        state[n] = 2

    for n in levels:
        if n not in state:
            visit(n)


def test_hierarchy_answers_match_the_tree():
    t = make_task("hierarchy", **SMALL["hierarchy"])
    ps = t.problems()
    yes_no = ps.targets < 2
    assert abs(int((ps.targets == 1).sum()) - int((ps.targets == 0).sum())) <= 6  # balanced
    for row, target in zip(ps.inputs, ps.targets, strict=True):
        x = int(row[0]) - 1
        if t.vocab[row[1]] in ("is-a?", "kind-of?"):
            assert (target == 1) == ((int(row[2]) - 1) in t.ancestors(x))
        else:
            level = int(t.vocab[row[2]][1:])
            expected = [a for a in [x, *t.ancestors(x)] if t.nodes[a].level == level]
            assert expected == [int(target) - 2]
    assert yes_no.any() and (~yes_no).any()


def test_hierarchy_tests_only_rephrased_facts():
    t = make_task("hierarchy", **SMALL["hierarchy"])
    isa, kind = t.token_id("is-a?"), t.token_id("kind-of?")
    sp = t.split(5)
    train = sp.train.row_keys()
    assert (sp.test.inputs[:, 1] != t.token_id("ancestor@")).all()
    for row in sp.test.inputs:
        twin = row.copy()
        twin[1] = kind if row[1] == isa else isa
        assert twin.tobytes() in train  # the fact was taught in the other phrasing


def test_modular_answers():
    t = make_task("modular", p=7, ops="+-*")
    for row, target in zip(t.problems().inputs, t.problems().targets, strict=True):
        a, op, b, eq = t.decode(row)
        assert eq == "="
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op] % 7
        assert int(target) == expected
    rel = {(r.source, r.target, r.relation, r.context) for r in t.relations()}
    assert ("num:3", "num:4", "inverse_of", "op:+") in rel
    assert ("num:2", "num:4", "inverse_of", "op:*") in rel  # 2 * 4 = 8 = 1 (mod 7)
    assert ("num:6", "num:0", "precedes", None) in rel


def test_chain_answers():
    t = make_task("chain", **SMALL["chain"])
    for row, target in zip(t.problems().inputs, t.problems().targets, strict=True):
        y = int(row[0]) - 1
        for tok in row[1:]:
            if tok != PAD_ID:
                y = int(t.tables[int(t.vocab[tok][1:]), y])
        assert y == target


def _truth(task, probes):
    """Ground-truth answers to probes (a probe that is no task problem gets class 0)."""
    ps = task.problems()
    look = {
        r.tobytes(): int(y) for r, y in zip(ps.inputs.astype(np.int64), ps.targets, strict=True)
    }
    return [look.get(np.array(p.tokens, dtype=np.int64).tobytes(), 0) for p in probes]


def test_chain_operator_probes_are_one_step_rows():
    t = make_task("chain", n=8, functions=2, k=3)
    probes = t.operator_probes()
    assert len(probes) == 8 * 2
    ids = {c.id for c in t.concepts()}
    for p in probes:
        assert p.operator in ids and p.source in ids and len(p.tokens) == t.seq_len
        assert p.tokens[2:] == (PAD_ID,) * (t.seq_len - 2)
    facts = t.operator_facts(probes, _truth(t, probes), [1.0] * len(probes))
    assert not facts.edges and len(facts.entries) == len(probes)
    for e in facts.entries:
        j, x = int(e.operator.split(":")[1]), int(e.source.split(":")[1])
        assert e.target == f"sym:{t.tables[j][x]}"


def test_hierarchy_operator_facts_recover_the_tree_from_answers():
    t = make_task("hierarchy", depth=3, branching=3)
    probes = t.operator_probes()
    assert len(probes) == (len(t.nodes) - 1) * 3
    answers = _truth(t, probes)
    facts = t.operator_facts(probes, answers, [0.9] * len(probes))
    assert not facts.entries
    truth = {(r.source, r.target) for r in t.relations() if r.relation == "is_a"}
    assert {(e.source, e.target) for e in facts.edges} == truth
    # a node whose depth the teacher never names gets no edge: facts come from answers only
    wrong = [0 if p.source == t.node_id(5) else a for p, a in zip(probes, answers, strict=True)]
    edges = t.operator_facts(probes, wrong, [0.9] * len(probes)).edges
    assert t.node_id(5) not in {e.source for e in edges}


def test_modular_has_no_operator_probes():
    assert make_task("modular", p=5).operator_probes() == []


def test_unknown_task_and_options():
    with pytest.raises(UnknownTaskError, match="known: "):
        make_task("nope")
    with pytest.raises(TaskOptionError, match="valid: "):
        make_task("modular", q=3)
    with pytest.raises(TaskOptionError):
        make_task("modular", p="seven")
    with pytest.raises(TaskOptionError):
        make_task("modular", ops="+/")
    with pytest.raises(TaskOptionError):
        make_task("chain", k=1)
    with pytest.raises(TaskOptionError):
        make_task("hierarchy", depth=8, branching=8)
    with pytest.raises(UsageError) as info:
        make_task("nope")
    assert info.value.code == "USAGE" and isinstance(info.value, ValueError)


def test_string_options_are_coerced():
    assert make_task("modular", **parse_option_pairs(["p=13", "ops=+"])).options.p == 13
    with pytest.raises(TaskOptionError):
        parse_option_pairs(["p"])
    with pytest.raises(TaskOptionError):
        parse_option_pairs(["p=3", "p=5"])
