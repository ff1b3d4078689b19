"""Concept-state students: students whose state is a distribution over the packet's concepts.

A generic student has to discover, from a few rows, both what the concepts are and how the
task's operation moves between them; a packet can tell it the first and show it the second, but
only a student that *steps in concept space* can use what a handful of covering traces shows to
answer every composition (spec/algorithms.md §3.9). Two shapes, by how a family's rows read:

- :class:`StepwiseConceptStudent` (rows ``[operand, op_1, op_2, …]``, e.g. ``chain``): the state
  starts at the operand's concept, and every operator token moves it with one weight-tied step
  (an MLP from the state's embedding and the token's embedding to the next state's logits).
  Trained from traces with a hint at every step (the concept the teacher's readout named) and
  from operator entries (one step each).
- :class:`TaxonomyConceptStudent` (rows ``[x, query, y]``, ``hierarchy``): a learned parent
  operator ``P`` (a row-stochastic matrix over the nodes, the root absorbing). "Is ``y`` a kind
  of ``x``?" is the mass the walk from ``x`` puts on ``y``; "the ancestor of ``x`` at depth
  ``k``" is the node on the walk whose walk reaches the root in exactly ``k`` hops. Trained from
  ``is_a`` edges (one parent fact each) or, as the same-prior control does, from rows.

Both map token rows ``int64 [B, L]`` to logits ``[B, C]`` over the task's answer classes, like
every other student, so the same evaluation, accounting and self-distillation apply. Their prior
is the shape of the family's rows (which tokens are operators, which queries exist), never its
tables: a student of either shape trained on the same rows without a packet is the *same-prior
control* the experiments report next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from m2kt_ref.errors import UsageError
from m2kt_ref.packet.codec import Packet
from m2kt_ref.packet.extensions import read_derivation, read_operators
from m2kt_ref.transfer.tasks import PAD_ID, Task
from m2kt_ref.transfer.tasks.hierarchy import ANCESTOR_Q

__all__ = [
    "CONCEPT_FAMILIES",
    "ConceptFit",
    "StepwiseConceptStudent",
    "TaxonomyConceptStudent",
    "build_concept_student",
    "fit_from_packet",
    "fit_on_rows",
]

#: Task family -> the concept-state student shape that reads its rows.
CONCEPT_FAMILIES = {"chain": "stepwise", "hierarchy": "taxonomy"}
_NEG = -30.0


class StepwiseConceptStudent(nn.Module):
    """State = logits over the answer classes; one weight-tied step per operator token.

    Args:
        task: a family whose first token names a class (its label is an answer label) and
            whose other non-padding tokens are operators.
        width: embedding width of states and tokens.
        seed: initialisation seed.
    """

    def __init__(self, task: Task, *, width: int = 32, seed: int = 0) -> None:
        super().__init__()
        labels = {lab: i for i, lab in enumerate(task.answer_labels)}
        operand = torch.full((task.vocab_size,), -1, dtype=torch.long)
        for tok, text in enumerate(task.vocab):
            if text in labels:
                operand[tok] = labels[text]
        if int((operand >= 0).sum()) == 0:
            raise UsageError(f"task {task.name}: no token names an answer class")
        self.register_buffer("operand", operand)
        self.n_classes = task.n_classes
        g = torch.Generator().manual_seed(seed)
        self.state_embed = nn.Parameter(
            torch.randn(task.n_classes, width, generator=g) / width**0.5
        )
        self.token_embed = nn.Parameter(
            torch.randn(task.vocab_size, width, generator=g) / width**0.5
        )
        self.step_in = nn.Linear(2 * width, 4 * width)
        self.step_out = nn.Linear(4 * width, task.n_classes)
        with torch.no_grad():
            for layer in (self.step_in, self.step_out):
                nn.init.normal_(layer.weight, std=(1.0 / layer.in_features) ** 0.5, generator=g)
                nn.init.zeros_(layer.bias)

    def steps(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Logits after every position (position 0: the operand's own class)."""
        x = rows.long()
        first = self.operand[x[:, 0]].clamp(min=0)
        logits = torch.full((len(x), self.n_classes), _NEG, device=x.device)
        logits = logits.scatter(1, first[:, None], 0.0)
        out = [logits]
        for p in range(1, x.shape[1]):
            tok = x[:, p]
            state = torch.softmax(logits, dim=-1) @ self.state_embed
            h = torch.cat([state, self.token_embed[tok]], dim=-1)
            stepped = self.step_out(F.gelu(self.step_in(h)))
            logits = torch.where((tok != PAD_ID)[:, None], stepped, logits)
            out.append(logits)
        return out

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.steps(rows)[-1]


class TaxonomyConceptStudent(nn.Module):
    """A learned parent operator over a taxonomy's nodes (see the module docstring).

    Args:
        task: the ``hierarchy`` family (classes ``no``, ``yes``, then one per node, root first).
        max_depth: hops the walk takes (at least the tree's depth).
        seed: initialisation seed.
    """

    def __init__(self, task: Task, *, max_depth: int = 8, seed: int = 0) -> None:
        super().__init__()
        if task.name != "hierarchy":
            raise UsageError(f"the taxonomy student reads hierarchy rows, not {task.name}")
        self.n_nodes = task.n_classes - 2
        self.max_depth = int(max_depth)
        self.tok_node = 1  # token of node i is 1 + i, class of node i is 2 + i
        self.q_ancestor = task.token_id(ANCESTOR_Q)
        self.level0 = task.token_id("L0")
        g = torch.Generator().manual_seed(seed)
        self.parent_logits = nn.Parameter(
            torch.randn(self.n_nodes, self.n_nodes, generator=g) * 0.01
        )

    def parent(self) -> torch.Tensor:
        """``P[v, u]``: probability that ``u`` is ``v``'s parent; the root (node 0) absorbs."""
        p = torch.softmax(self.parent_logits, dim=-1)
        root = F.one_hot(torch.tensor(0), self.n_nodes).to(p)
        return torch.cat([root[None], p[1:]], dim=0)

    def _walks(self, x: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
        """``[B, D+1, N]``: where the walk from each ``x`` is after 0..D hops."""
        s = F.one_hot(x, self.n_nodes).to(P)
        out = [s]
        for _ in range(self.max_depth):
            s = s @ P
            out.append(s)
        return torch.stack(out, dim=1)

    def _levels(self, P: torch.Tensor) -> torch.Tensor:
        """``[N, D+1]``: probability that a node's walk first reaches the root after k hops."""
        reach = [F.one_hot(torch.tensor(0), self.n_nodes).to(P)]
        for _ in range(self.max_depth):
            reach.append(P @ reach[-1])
        r = torch.stack(reach, dim=1)  # r[v, k] = P(root within k hops)
        return torch.cat([r[:, :1], r[:, 1:] - r[:, :-1]], dim=1).clamp(min=0.0)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        x = rows.long()
        P = self.parent()
        node = (x[:, 0] - self.tok_node).clamp(0, self.n_nodes - 1)
        walks = self._walks(node, P)
        out = torch.full((len(x), 2 + self.n_nodes), _NEG, device=x.device)
        # ancestor@Lk: the node on the walk that sits at depth k
        k = (x[:, 2] - self.level0).clamp(0, self.max_depth)
        level = self._levels(P)[:, k].T  # [B, N]
        weight = walks.sum(dim=1) * level
        anc = torch.log(weight / weight.sum(-1, keepdim=True).clamp_min(1e-9) + 1e-9)
        # is-a?(x, y): mass of y on the strict walk (the root is everyone's ancestor)
        y = (x[:, 2] - self.tok_node).clamp(0, self.n_nodes - 1)
        mass = walks[:, 1:].gather(2, y[:, None, None].expand(-1, self.max_depth, 1)).sum(1)
        mass = mass.squeeze(-1).clamp(1e-6, 1 - 1e-6)
        yes_no = torch.stack([torch.log1p(-mass), torch.log(mass)], dim=1)
        is_anc = (x[:, 1] == self.q_ancestor)[:, None]
        out = torch.where(is_anc, torch.cat([out[:, :2], anc], dim=1), out)
        return torch.where(is_anc, out, torch.cat([yes_no, out[:, 2:]], dim=1))


def build_concept_student(task: Task, *, seed: int = 0) -> nn.Module:
    """The concept-state student that reads ``task``'s rows.

    Raises:
        UsageError: ``USAGE`` for a family without one (see :data:`CONCEPT_FAMILIES`).
    """
    shape = CONCEPT_FAMILIES.get(task.name)
    if shape == "stepwise":
        return StepwiseConceptStudent(task, seed=seed)
    if shape == "taxonomy":
        # the walk's length comes from the row grammar: the level tokens L0..LD a query can name
        depth = sum(1 for tok in task.vocab if tok[:1] == "L" and tok[1:].isdigit()) - 1
        return TaxonomyConceptStudent(task, max_depth=depth, seed=seed)
    raise UsageError(f"no concept-state student reads {task.name} rows")


@dataclass(frozen=True)
class ConceptFit:
    """What a fit consumed and how it ended (the accounting counts these, spec §5)."""

    task_rows: int  # distinct task rows whose answers were trained on
    step_labels: int  # per-step hints trained on
    operator_facts: int  # operator entries and teacher-probe edges trained on
    declared_facts: int  # declared edges trained on
    steps: int
    final_loss: float


def _class_of_concept(task: Task) -> dict[str, int]:
    by_label = {lab: i for i, lab in enumerate(task.answer_labels)}
    return {c.id: by_label[c.label] for c in task.concepts() if c.label in by_label}


def _optimise(model: nn.Module, loss_fn, steps: int, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.zeros(())
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def fit_from_packet(
    student: nn.Module,
    packet: Packet,
    task: Task,
    *,
    steps: int = 3000,
    lr: float = 1e-2,
    use_traces: bool = True,
    use_hints: bool = True,
    use_operators: bool = True,
    use_graph: bool = True,
    derivations: Sequence[str] = ("teacher-probe", "teacher-trace", "declared"),
) -> ConceptFit:
    """Train a concept-state student on what the packet says, nothing else.

    A stepwise student learns from the traces (each row's answer, and with ``use_hints`` the
    concept named at every step) and from operator entries (one step each); a taxonomy student
    learns its parent operator from the graph's ``is_a`` edges whose derivation is in
    ``derivations`` (teacher-geometry never yields ``is_a``). Full-batch Adam.

    Args:
        student: from :func:`build_concept_student`.
        packet: the decoded packet.
        task: the student's task (names which class a concept is).
        steps: optimiser steps.
        lr: Adam learning rate.
        use_traces, use_hints, use_operators, use_graph: which packet content to use
            (ablations).
        derivations: edge derivations a taxonomy student trusts.

    Returns:
        a :class:`ConceptFit`.

    Raises:
        UsageError: ``USAGE`` when the packet holds nothing this student can learn from.
    """
    classes = _class_of_concept(task)
    body = packet.body
    if isinstance(student, TaxonomyConceptStudent):
        derivation = _edge_derivations(packet)
        pairs = []
        counts = {"teacher-probe": 0, "teacher-trace": 0, "declared": 0}
        for e, how in zip(body.graph.edges, derivation, strict=True):
            if not use_graph or e.relation != "is_a" or how not in derivations:
                continue
            if e.source in classes and e.target in classes:
                pairs.append((classes[e.source] - 2, classes[e.target] - 2))
                counts[how] = counts.get(how, 0) + 1
        if not pairs:
            raise UsageError("the packet holds no is_a edge this student can learn from")
        child = torch.tensor([c for c, _ in pairs])
        par = torch.tensor([p for _, p in pairs])

        def edge_loss() -> torch.Tensor:
            return F.cross_entropy(student.parent_logits[child], par)

        final = _optimise(student, edge_loss, steps, lr=0.1)
        return ConceptFit(
            0,
            0,
            counts["teacher-probe"] + counts["teacher-trace"],
            counts["declared"],
            steps,
            final,
        )
    if not isinstance(student, StepwiseConceptStudent):
        raise UsageError(f"{type(student).__name__} is not a concept-state student")
    rows: list[list[int]] = []
    answers: list[int] = []
    hints: list[list[int]] = []
    step_labels = 0
    if use_traces:
        for tr in body.traces:
            rows.append(list(tr.input))
            answers.append(int(tr.answer))
            hint = [-100] * len(tr.input)
            if use_hints:
                for s in tr.steps:
                    if s.position is not None and s.concept in classes:
                        hint[s.position] = classes[s.concept]
                        step_labels += 1
            hints.append(hint)
    n_trace_rows = len({tuple(r) for r in rows})
    operator_facts = 0
    if use_operators:
        for e in read_operators(packet.body):
            if e.target in classes:
                rows.append(list(e.input))
                answers.append(classes[e.target])
                hints.append([-100] * len(e.input))
                operator_facts += 1
    if not rows:
        raise UsageError("the packet holds no trace or operator entry this student can learn from")
    x = torch.tensor(rows, dtype=torch.long)
    y = torch.tensor(answers, dtype=torch.long)
    h = torch.tensor(hints, dtype=torch.long)

    def loss() -> torch.Tensor:
        out = student.steps(x)
        total = F.cross_entropy(out[-1], y)
        for p in range(1, x.shape[1]):
            mask = h[:, p] >= 0
            if bool(mask.any()):
                total = total + F.cross_entropy(out[p][mask], h[mask, p])
        return total

    final = _optimise(student, loss, steps, lr)
    return ConceptFit(n_trace_rows, step_labels, operator_facts, 0, steps, final)


def fit_on_rows(
    student: nn.Module, rows: np.ndarray, labels: np.ndarray, *, steps: int = 3000, lr: float = 1e-2
) -> ConceptFit:
    """Train a concept-state student on labelled rows alone (answers, no hints, no edges).

    The same-prior control (ground-truth labels of the rows the packet's facts came from) and
    distillation into the concept-state family (teacher answers on drawn rows) both use it.
    """
    x = torch.as_tensor(np.ascontiguousarray(rows, dtype=np.int64))
    y = torch.as_tensor(np.ascontiguousarray(labels, dtype=np.int64))
    lr = 0.1 if isinstance(student, TaxonomyConceptStudent) else lr
    final = _optimise(student, lambda: F.cross_entropy(student(x), y), steps, lr)
    return ConceptFit(len({r.tobytes() for r in x.numpy()}), 0, 0, 0, steps, final)


def _edge_derivations(packet: Packet) -> list[str]:
    derivation = read_derivation(packet.body)
    if derivation is not None:
        return list(derivation.edges)
    # a 1.0 packet says nothing about where its edges came from: treat them as declared
    return ["declared"] * len(packet.body.graph.edges)
