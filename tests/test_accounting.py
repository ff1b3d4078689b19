"""Data accounting (spec/algorithms.md §5): the counter records exactly the rows that reached a
model's forward, classified as task problems, concept probes or other (1 torch thread)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from m2kt_ref.transfer.accounting import (  # noqa: E402
    InputCounter,
    TransferAccount,
    probe_row_keys,
    row_keys,
)
from m2kt_ref.transfer.distill import FitConfig, logit_distill, train_on_labels  # noqa: E402
from m2kt_ref.transfer.nets import NetConfig, build_model  # noqa: E402
from m2kt_ref.transfer.tasks import make_task  # noqa: E402
from m2kt_ref.transfer.teacher.generate import generate_from_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def task():
    return make_task("modular", p=7, ops="+")


def _net(task, family="mlp", seed=0):
    return build_model(
        NetConfig(
            family=family,
            vocab_size=task.vocab_size,
            seq_len=task.seq_len,
            n_classes=task.n_classes,
            width=16,
            depth=1,
            heads=2,
            seed=seed,
        )
    )


def test_counts_distinct_rows_and_classifies(task):
    model = _net(task)
    problems = task.problems().inputs.copy()
    probes = np.array([p.tokens for c in task.concepts() for p in c.probes], dtype=np.int64)
    other = np.full((2, task.seq_len), task.vocab_size - 1, dtype=np.int64)  # "= = = ="
    with InputCounter(task, [model]) as c:
        model(torch.as_tensor(problems[:5]))
        model(torch.as_tensor(problems[3:8]))  # 2 repeats
        model(torch.as_tensor(probes))
        model(torch.as_tensor(other))
        tally = c.tally()
    assert tally.task_inputs == 8
    assert tally.concept_probes == len(row_keys(probes))
    assert tally.other == 1
    assert tally.rows_total == 5 + 5 + len(probes) + 2
    assert c.task_rows == row_keys(problems[:8])


def test_paused_rows_and_closed_counter_are_not_counted(task):
    model = _net(task)
    x = torch.as_tensor(task.problems().inputs[:6].copy())
    c = InputCounter(task, [model])
    with c.paused():
        model(x)
    assert c.tally().task_inputs == 0
    c.close()
    model(x)
    assert c.tally().rows_total == 0


def test_two_models_share_one_ledger(task):
    a, b = _net(task, seed=1), _net(task, seed=2)
    x = torch.as_tensor(task.problems().inputs[:4].copy())
    with InputCounter(task, [a, b]) as c:
        a(x)
        b(x)
        assert c.tally().task_inputs == 4
        assert c.tally().rows_total == 8


def test_generation_provenance_equals_counter(task):
    teacher = _net(task, family="transformer")
    with InputCounter(task, [teacher]) as c:
        gen = generate_from_model(teacher, task, traces=5, created=0)
    prov = gen.packet.body.provenance
    tally = c.tally()
    # the teacher decodes every candidate problem to choose its traces: all of them count
    assert tally.task_inputs == prov.task_inputs_used == len(task.problems())
    assert tally.concept_probes == prov.concept_probes_used
    traces = {np.array(t.input, dtype=np.int64).tobytes() for t in gen.packet.body.traces}
    assert len(traces) == 5 and traces <= c.task_rows
    assert probe_row_keys(task) >= (c.rows - c.task_rows)


def test_transfer_account_counts_labels_not_hints():
    account = TransferAccount(task_rows=13, trace_step_labels=52, operator_facts=4,
                              declared_facts=2, concept_probes=90)  # fmt: skip
    assert account.label_equivalents == 13 + 4 + 2  # hints and probes are counted beside
    more = account.with_synthetic(1000, 3)
    assert more.label_equivalents == account.label_equivalents
    assert more.to_dict()["synthetic_rows"] == 1000 and more.to_dict()["synthetic_in_test"] == 3
    assert set(more.to_dict()) >= {"task_rows", "trace_step_labels", "concept_probes"}


@pytest.mark.parametrize("n", [3, 11])
def test_kd_and_scratch_count_exactly_their_transfer_set(task, n):
    teacher, student = _net(task, seed=3), _net(task, seed=4)
    x = task.problems().inputs[:n]
    y = task.problems().targets[:n]
    test = task.problems().inputs[-10:].copy()
    cfg = FitConfig(steps=4, eval_every=2, batch_size=2)
    with InputCounter(task, [teacher, student]) as c:

        def ev():
            with c.paused():
                student(torch.as_tensor(test))
            return 0.0

        logit_distill(student, teacher, x, cfg, evaluate=ev)
        assert c.task_rows == row_keys(x)  # the test rows were never counted
    scratch = _net(task, seed=5)
    with InputCounter(task, [scratch]) as c:
        train_on_labels(scratch, x, y, cfg, evaluate=lambda: 0.0)
        # mini-batches of 2 over 4 steps may not visit every row: at most n, all from the set
        assert c.task_rows <= row_keys(x)
        assert 0 < c.tally().task_inputs <= n
