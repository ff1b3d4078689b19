"""Composite-loss terms (m2kt_ref.transfer.student.losses) and verification metrics
(m2kt_ref.transfer.student.verify) against slow loop-based float64 references, with fixed seeds
and explicit tolerances."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from m2kt_ref.errors import IngestError  # noqa: E402
from m2kt_ref.transfer.student import losses as L  # noqa: E402
from m2kt_ref.transfer.student import verify as V  # noqa: E402
from m2kt_ref.transfer.student.view import (  # noqa: E402
    WorkBudget,
    hierarchy_closure,
    linked_pairs,
)

TOL = {"rel": 1e-9, "abs": 1e-12}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- slow references --------------------------------------------------------------------------


def cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
    return 0.0 if na == 0 or nb == 0 else float(a @ b) / (na * nb)


def centre(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0)


def ref_cosine_geometry(z: np.ndarray, e: np.ndarray, center: bool) -> float:
    if center:
        z, e = centre(z), centre(e)
    n = len(z)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += (cos(z[i], z[j]) - cos(e[i], e[j])) ** 2
    return total / (n * (n - 1))


def ref_distance_geometry(z: np.ndarray, e: np.ndarray) -> float:
    n = len(z)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    dz = [math.dist(z[i], z[j]) for i, j in pairs]
    de = [math.dist(e[i], e[j]) for i, j in pairs]
    mz, me = sum(dz) / len(dz), sum(de) / len(de)
    return sum((a / mz - b / me) ** 2 for a, b in zip(dz, de, strict=True)) / len(pairs)


def ref_anchoring(z: np.ndarray, y: np.ndarray) -> float:
    err = sum(float((z[i] - y[i]) @ (z[i] - y[i])) for i in range(len(z))) / len(z)
    c = centre(y)
    spread = sum(float(r @ r) for r in c) / len(c)
    return err / spread


# -- geometry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize(("n", "d_s", "d_t"), [(2, 3, 5), (7, 4, 9), (12, 16, 8)])
def test_cosine_geometry_matches_reference(n, d_s, d_t, center):
    z, e = rand(n, d_s, seed=n), rand(n, d_t, seed=n + 100) + 0.5
    got = L.cosine_geometry_loss(z, e, center=center)
    want = ref_cosine_geometry(z.numpy(), e.numpy(), center)
    assert float(got) == pytest.approx(want, **TOL)


@pytest.mark.parametrize(("n", "d_s", "d_t"), [(2, 3, 5), (7, 4, 9), (12, 16, 8)])
def test_distance_geometry_matches_reference(n, d_s, d_t):
    z, e = rand(n, d_s, seed=n), rand(n, d_t, seed=n + 1)
    got = L.distance_geometry_loss(z, e)
    assert float(got) == pytest.approx(ref_distance_geometry(z.numpy(), e.numpy()), rel=1e-6)


def test_geometry_is_zero_for_a_similar_copy_and_scale_free():
    e = rand(9, 6, seed=3)
    q, _ = torch.linalg.qr(rand(6, 6, seed=4))
    z = 3.7 * (e @ q) + 2.0  # rotated, scaled and shifted: same angles (centred) and distances
    assert float(L.cosine_geometry_loss(z, e, center=True)) < 1e-20
    assert float(L.distance_geometry_loss(z, e)) < 1e-12
    assert float(L.distance_geometry_loss(z * 10, e)) == pytest.approx(
        float(L.distance_geometry_loss(z, e)), abs=1e-12
    )


@pytest.mark.parametrize("n", [2, 5, 11])
def test_anchoring_matches_reference(n):
    z, y = rand(n, 7, seed=n), rand(n, 7, seed=n + 9) * 2
    got = L.anchoring_loss(z, y)
    assert float(got) == pytest.approx(ref_anchoring(z.numpy(), y.numpy()), **TOL)
    assert float(L.anchoring_loss(y.clone(), y)) == 0.0


def test_small_inputs_give_zero_with_a_graph():
    z = rand(1, 4, seed=0).requires_grad_(True)
    e = rand(1, 5, seed=1)
    for value in (L.cosine_geometry_loss(z, e), L.distance_geometry_loss(z, e)):
        assert float(value.detach()) == 0.0
        value.backward()  # no error: the zero belongs to the graph
    empty = torch.zeros(0, dtype=torch.long)
    with torch.no_grad():
        assert float(L.edge_pull_loss(z, empty, empty, torch.zeros(0))) == 0.0
        assert float(L.hierarchy_triplet_loss(z, empty, empty, empty)) == 0.0
        assert float(L.unrelated_margin_loss(z, empty, empty)) == 0.0
        assert float(L.trace_state_loss(z[:0], z[:0], 1.0)) == 0.0
    assert float(L.answer_loss(torch.zeros(0, 3), empty)) == 0.0
    assert float(L.output_kl(torch.zeros(0, 3), torch.zeros(0, 3))) == 0.0


def test_pairwise_distances_have_finite_gradients_on_duplicates():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    d = L.pairwise_distances(x)
    assert torch.equal(torch.diagonal(d), torch.zeros(3))
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


# -- structure --------------------------------------------------------------------------------


def test_edge_pull_matches_reference():
    z = rand(6, 5, seed=7)
    src = torch.tensor([0, 1, 2, 5, 3])
    dst = torch.tensor([1, 2, 4, 0, 3])
    w = torch.tensor([1.0, 0.2, 0.7, 0.0, 0.5], dtype=torch.float64)
    got = L.edge_pull_loss(z, src, dst, w, cos_min=0.1, cos_max=0.8)
    zz = z.numpy()
    want = 0.0
    for s, t, wt in zip(src.tolist(), dst.tolist(), w.tolist(), strict=True):
        target = 0.1 + wt * 0.7
        gap = max(target - cos(zz[s], zz[t]), 0.0)
        want += wt * gap * gap
    assert float(got) == pytest.approx(want / 5, **TOL)


def test_edge_pull_is_one_sided():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.01]], dtype=torch.float64)  # cosine ~ 1
    one = torch.tensor([0])
    assert float(L.edge_pull_loss(z, one, one + 1, torch.ones(1, dtype=torch.float64))) == 0.0


def test_hierarchy_triplet_matches_reference():
    z = rand(8, 4, seed=11)
    child, parent, neg = torch.tensor([0, 1, 2]), torch.tensor([3, 3, 4]), torch.tensor([5, 6, 7])
    got = L.hierarchy_triplet_loss(z, child, parent, neg, margin=0.25)
    zz = z.numpy()
    want = sum(
        max(0.25 - cos(zz[c], zz[p]) + cos(zz[c], zz[n]), 0.0)
        for c, p, n in zip(child.tolist(), parent.tolist(), neg.tolist(), strict=True)
    )
    assert float(got) == pytest.approx(want / 3, **TOL)


def test_unrelated_margin_matches_reference():
    z = rand(6, 3, seed=2)
    a, b = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 4, 0, 1])
    got = L.unrelated_margin_loss(z, a, b, margin=-0.2)
    zz = z.numpy()
    want = sum(
        max(cos(zz[i], zz[j]) + 0.2, 0.0) ** 2 for i, j in zip(a.tolist(), b.tolist(), strict=True)
    )
    assert float(got) == pytest.approx(want / 4, **TOL)


# -- reasoning and safety -----------------------------------------------------------------


def test_trace_state_loss_matches_reference():
    s, t = rand(5, 6, seed=1), rand(5, 6, seed=2)
    got = L.trace_state_loss(s, t, 2.5, mse_weight=0.7, cosine_weight=0.3)
    ss, tt = s.numpy(), t.numpy()
    mse = sum(float((ss[i] - tt[i]) @ (ss[i] - tt[i])) for i in range(5)) / 5 / 2.5
    cosine = sum(1 - cos(ss[i], tt[i]) for i in range(5)) / 5
    assert float(got) == pytest.approx(0.7 * mse + 0.3 * cosine, **TOL)


def test_answer_loss_is_cross_entropy():
    logits, answers = rand(4, 5, seed=3), torch.tensor([0, 4, 2, 2])
    lg = logits.numpy()
    want = -sum(
        lg[i, a] - math.log(sum(math.exp(v) for v in lg[i])) for i, a in enumerate(answers.tolist())
    )
    assert float(L.answer_loss(logits, answers)) == pytest.approx(want / 4, rel=1e-6)


def test_output_kl_matches_reference_and_vanishes_on_equal_outputs():
    ref, new = rand(6, 4, seed=5), rand(6, 4, seed=6)
    want = 0.0
    for i in range(6):
        p = np.exp(ref[i].numpy()) / np.exp(ref[i].numpy()).sum()
        q = np.exp(new[i].numpy()) / np.exp(new[i].numpy()).sum()
        want += float(np.sum(p * np.log(p / q)))
    assert float(L.output_kl(ref, new)) == pytest.approx(want / 6, rel=1e-6)
    assert float(L.output_kl(ref, ref.clone())) == pytest.approx(0.0, abs=1e-7)
    assert V.mean_kl(ref, new) == pytest.approx(want / 6, rel=1e-9)


def test_relative_drift():
    p0 = [rand(3, 4, seed=1), rand(5, seed=2)]
    p = [p0[0] + 0.1, p0[1] * 1.5]
    num = sum(float(((a - b) ** 2).sum()) for a, b in zip(p, p0, strict=True))
    den = sum(float((b**2).sum()) for b in p0)
    sq = L.relative_drift_sq(p, p0, torch.tensor(den, dtype=torch.float64))
    assert float(sq) == pytest.approx(num / den, **TOL)
    assert V.relative_drift(p, p0) == pytest.approx(math.sqrt(num / den), **TOL)
    assert V.relative_drift(p0, p0) == 0.0


def test_gradients_flow_to_the_student_side_only():
    z = rand(6, 4, seed=0).requires_grad_(True)
    e = rand(6, 3, seed=1).requires_grad_(True)
    total = L.cosine_geometry_loss(z, e) + L.distance_geometry_loss(z, e)
    total = total + L.anchoring_loss(z, rand(6, 4, seed=2))
    total.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert e.grad is None  # the teacher side is a constant


# -- verification metrics ----------------------------------------------------------------------


def test_concept_retrieval_nn_and_csls():
    cands = rand(10, 8, seed=4)
    queries = cands[[3, 1, 7]] + 0.01 * rand(3, 8, seed=5)
    got = V.concept_retrieval(queries, cands, torch.tensor([3, 1, 7]), k=3)
    assert got["top1_nn"] == 1.0 and got["top1_csls"] == 1.0 and got["n"] == 3
    wrong = V.concept_retrieval(queries, cands, torch.tensor([0, 0, 0]), k=3)
    assert wrong["top1_nn"] == 0.0
    none = V.concept_retrieval(queries[:0], cands, torch.zeros(0, dtype=torch.long))
    assert none["top1_csls"] is None


def _dense_non_edges(source, linked, per_edge, generator):
    """The former sampler (an ``m x n`` cumulative sum over a dense adjacency): the reference
    the sparse one must reproduce draw for draw."""
    n, m = linked.shape[0], int(source.numel())
    out = torch.full((m, per_edge), -1, dtype=torch.long)
    allowed = ~linked.clone()
    allowed.fill_diagonal_(False)
    allowed = allowed[source]
    counts = allowed.sum(dim=1)
    ranks = torch.rand((m, per_edge), generator=generator, dtype=torch.float64)
    ranks = (ranks * counts[:, None].clamp_min(1)).floor().long()
    picks = torch.searchsorted(allowed.long().cumsum(dim=1), ranks + 1).clamp_max(n - 1)
    return torch.where(counts[:, None] > 0, picks, out)


def test_sample_non_edges_respects_the_graph():
    n = 7
    src, dst = torch.tensor([0, 0, 1, 2]), torch.tensor([1, 2, 3, 6])
    linked = torch.zeros(n, n, dtype=torch.bool)
    linked[src, dst] = True
    linked[dst, src] = True
    pairs = linked_pairs(n, src.numpy(), dst.numpy())
    neg = V.sample_non_edges(src, dst, pairs, 50, torch.Generator().manual_seed(0))
    assert neg.shape == (4, 50)
    for i, u in enumerate(src.tolist()):
        row = set(neg[i].tolist())
        assert u not in row
        assert not any(linked[u, r] for r in row)
    # every allowed concept gets drawn eventually (uniform over the allowed set)
    assert set(neg[0].tolist()) == {3, 4, 5, 6}
    every = torch.combinations(torch.arange(n)).T
    full = linked_pairs(n, every[0].numpy(), every[1].numpy())
    assert (V.sample_non_edges(src, dst, full, 3, torch.Generator()) == -1).all()


@pytest.mark.parametrize("seed", range(5))
def test_sample_non_edges_draws_what_the_dense_sampler_drew(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 40, (1,), generator=g))
    m = int(torch.randint(1, 3 * n, (1,), generator=g))
    src, dst = torch.randint(0, n, (m,), generator=g), torch.randint(0, n, (m,), generator=g)
    linked = torch.zeros(n, n, dtype=torch.bool)
    linked[src, dst] = True
    linked[dst, src] = True
    sparse = V.sample_non_edges(
        src, dst, linked_pairs(n, src.numpy(), dst.numpy()), 7, torch.Generator().manual_seed(1)
    )
    assert torch.equal(sparse, _dense_non_edges(src, linked, 7, torch.Generator().manual_seed(1)))


def test_hierarchy_closure_is_reachability():
    """Against a dense transitive closure, on random graphs with cycles."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 30))
        m = int(rng.integers(0, 2 * n))
        child, parent = rng.integers(0, n, m), rng.integers(0, n, m)
        reach = np.eye(n, dtype=bool)
        reach[child, parent] = True
        for _ in range(n):
            reach = reach | ((reach.astype(int) @ reach.astype(int)) > 0)
        closure = hierarchy_closure(n, child, parent)
        a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        found = closure.contains(torch.from_numpy(a.ravel()), torch.from_numpy(b.ravel()))
        assert np.array_equal(found.numpy().reshape(n, n), reach), seed
        assert len(closure) == int(reach.sum())


def test_the_work_budget_refuses_a_closure_too_big():
    child = np.arange(99)
    with pytest.raises(IngestError) as exc:
        hierarchy_closure(100, child, child + 1, WorkBudget(1000))
    assert exc.value.code == "INGEST_BUDGET"
    assert len(hierarchy_closure(100, child, child + 1, WorkBudget(20_000))) == 5050


def test_relation_agreement_against_reference():
    states = rand(6, 4, seed=9)
    src, dst = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3])
    neg = torch.tensor([[4, 5, -1], [4, 5, 0], [-1, -1, -1]])
    got = V.relation_agreement(states, src, dst, ["a", "b", "a"], neg, center=False)
    s = states.numpy()
    wins = {"a": [0, 0], "b": [0, 0]}
    for i, rel in enumerate(["a", "b", "a"]):
        u, v = int(src[i]), int(dst[i])
        for r in neg[i].tolist():
            if r < 0:
                continue
            wins[rel][0] += 1
            wins[rel][1] += cos(s[u], s[v]) > cos(s[u], s[r])
    for rel, (comp, w) in wins.items():
        entry = got["by_relation"][rel]
        assert entry["comparisons"] == comp
        assert entry["agreement"] == (w / comp if comp else None)
    assert got["overall"]["edges"] == 3 and got["overall"]["comparisons"] == 5


def test_trace_agreement_and_answers():
    concepts = rand(5, 4, seed=1)
    steps = concepts[[2, 4, 0]] * 3.0  # same direction: nearest by cosine
    got = V.trace_agreement(steps, torch.tensor([2, 4, 1]), concepts, torch.arange(5))
    assert got == {"steps": 3, "agreement": pytest.approx(2 / 3)}
    only = V.trace_agreement(steps, torch.tensor([2, 4, 0]), concepts, torch.tensor([2, 4]))
    assert only["agreement"] == pytest.approx(2 / 3)  # concept 0 is not a candidate
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    assert V.answer_agreement(logits, torch.tensor([1, 1])) == 0.5
    assert V.accuracy(logits[:0], torch.zeros(0, dtype=torch.long)) is None
