"""Teacher-side generation (spec/algorithms.md §1): validity, accounting, determinism, dtypes,
signing, and the primitives against independent slow references (1 torch thread)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.packet import codec  # noqa: E402
from m2kt_ref.packet.keys import load_signing_key  # noqa: E402
from m2kt_ref.transfer.model_dir import (  # noqa: E402
    load_model_dir,
    state_dict_digest,
    weights_digest,
)
from m2kt_ref.transfer.tasks import make_task  # noqa: E402
from m2kt_ref.transfer.teacher.generate import (  # noqa: E402
    DEFAULT_SAFETY,
    GENERATOR_NAME,
    default_layer,
    generate_from_model,
    generate_packet,
    resolve_created,
)
from m2kt_ref.transfer.teacher.geometry import (  # noqa: E402
    abstraction_clusters,
    cluster_cut_sizes,
    concept_statistics,
    cosine_matrix,
    knn_similarity,
    nearest_concepts,
    relative_rms_error,
)
from m2kt_ref.transfer.teacher.readout import (  # noqa: E402
    class_concepts,
    net_readout,
    step_positions,
)
from m2kt_ref.transfer.teachers import teacher_preset, train_teacher  # noqa: E402

SMALL = {
    "modular": {"p": 13, "ops": "+-"},
    "hierarchy": {"depth": 3, "branching": 3},
    "chain": {"n": 8, "functions": 2, "k": 3},
}
FAMILIES = sorted(SMALL)
CREATED = "2026-01-01T00:00:00Z"
K = 6


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def teacher_dirs(tmp_path_factory):
    """One quick-scale teacher per task family (mlp, transformer, gru), capped at 100 steps:
    generation needs a trained model, not an accurate one."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("teachers")
    out = {}
    for name, opts in SMALL.items():
        preset = teacher_preset(name, "quick")
        run = train_teacher(
            make_task(name, **opts),
            scale="quick",
            seed=0,
            progress=False,
            train_config=dataclasses.replace(preset.train, steps=100),
        )
        out[name] = run.save(root / name)
    return out


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _packet(teacher_dirs, family, **kw):
    kw.setdefault("traces", K)
    kw.setdefault("created", CREATED)
    return generate_packet(teacher_dirs[family], **kw)


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_packet_validates_and_inspects(teacher_dirs, family, tmp_path, capsys):
    out = tmp_path / "p.m2kt"
    code, text, _ = _cli(
        capsys, "generate", "--teacher", teacher_dirs[family], "-o", out, "--traces", K,
        "--created", CREATED, "--json",
    )  # fmt: skip
    assert code == 0
    stats = json.loads(text)
    packet = codec.decode(out.read_bytes())
    assert stats["packet_id"] == packet.packet_id and stats["file_bytes"] == out.stat().st_size
    assert _cli(capsys, "validate", out)[0] == 0

    code, text, _ = _cli(capsys, "inspect", "--json", out)
    assert code == 0
    summary = json.loads(text)
    body = packet.body
    task = make_task(family, **SMALL[family])
    n_task = len(task.concepts())
    assert summary["concepts"]["count"] == len(body.concepts) == n_task + stats["clusters"]
    assert summary["concepts"]["by_kind"].get("cluster", 0) == stats["clusters"] > 0
    assert summary["graph"]["edges"] == len(body.graph.edges) == stats["edges"] > 0
    assert summary["traces"]["count"] == K == stats["traces"]
    assert summary["anchors"]["count"] == sum(len(c.probes) for c in task.concepts())
    prov = summary["provenance"]
    assert prov["generator"]["name"] == GENERATOR_NAME
    assert prov["task"] == {"name": family, "options": task.option_dict()}
    assert prov["parents"] == [] and prov["seed"] == 0
    assert prov["parameters"]["layer"] == body.teacher.layer
    assert "timing_s" not in prov["parameters"]  # created was pinned
    assert summary["teacher"]["model_digest"] == "sha256:" + weights_digest(teacher_dirs[family])
    assert summary["safety"] == {**DEFAULT_SAFETY}

    code, text, _ = _cli(capsys, "inspect", out)
    for section in ("concepts", "graph", "traces", "provenance"):
        assert f"\n  {section} " in text


@pytest.mark.parametrize("family", FAMILIES)
def test_recorded_inputs_equal_what_reached_the_teacher(teacher_dirs, family):
    md = load_model_dir(teacher_dirs[family])
    task = md.task()
    fed: list[tuple[int, ...]] = []

    def count(_module, args):
        fed.extend(tuple(int(v) for v in row) for row in args[0].reshape(len(args[0]), -1))

    handle = md.model.register_forward_pre_hook(count)
    try:
        result = generate_packet(md, traces=K, created=CREATED)
    finally:
        handle.remove()
    problems = {tuple(r) for r in task.problems().inputs.tolist()}
    probes = {tuple(p.tokens) for c in task.concepts() for p in c.probes}
    distinct = set(fed)
    prov = result.packet.body.provenance
    # the teacher decodes every candidate (every problem outside its test split) to choose traces
    candidates = problems - {tuple(r) for r in md.split().test.inputs.tolist()}
    assert prov.task_inputs_used == len(distinct & problems) == len(candidates)
    assert prov.concept_probes_used == len(distinct & probes - problems) == len(probes)
    assert distinct <= problems | probes  # nothing else went in
    assert result.stats["forward_rows_total"] == len(fed)
    # traces never come from the teacher's test split
    test_rows = {tuple(r) for r in md.split().test.inputs.tolist()}
    assert not {tuple(t.input) for t in result.packet.body.traces} & test_rows


@pytest.mark.parametrize("family", FAMILIES)
def test_default_layer_per_family(teacher_dirs, family):
    md = load_model_dir(teacher_dirs[family])
    depth = md.net_config.depth
    inner = "blocks" if md.net_config.family == "transformer" else "layers"
    assert default_layer(md.net_config) == f"{inner}.{depth - 1}"
    packet = _packet(teacher_dirs, family).packet
    assert packet.body.teacher.layer == f"{inner}.{depth - 1}"
    assert packet.body.teacher.architecture == md.net_config.family
    assert packet.body.teacher.latent_dim == md.net_config.width


def test_layer_option(teacher_dirs):
    packet = _packet(teacher_dirs, "hierarchy", layer="final").packet
    assert packet.body.teacher.layer == "final"
    assert packet.body.provenance.parameters["layer"] == "final"
    # a [N, d] layer: every step of a trace reads the row's one state
    states = packet.tensor_f32(packet.body.traces[0].states)
    assert np.array_equal(states, np.broadcast_to(states[0], states.shape))


# --------------------------------------------------------------------------- determinism


def test_same_seed_and_created_give_same_bytes(teacher_dirs, tmp_path, capsys, monkeypatch):
    a = codec.encode(_packet(teacher_dirs, "chain", seed=3).packet)
    b = codec.encode(_packet(teacher_dirs, "chain", seed=3).packet)
    assert a == b
    other = _packet(teacher_dirs, "chain", seed=4).packet
    assert [t.input for t in other.body.traces] != [t.input for t in codec.decode(a).body.traces]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01T00:00:00Z
    files = []
    for name in ("x.m2kt", "y.m2kt"):
        path = tmp_path / name
        assert _cli(capsys, "generate", "--teacher", teacher_dirs["chain"], "-o", path)[0] == 0
        files.append(path.read_bytes())
    assert files[0] == files[1]
    assert codec.decode(files[0]).body.header.created == CREATED


def test_unpinned_created_records_timing(teacher_dirs, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    result = generate_packet(teacher_dirs["chain"], traces=2)
    timing = result.packet.body.provenance.parameters["timing_s"]
    assert set(timing) >= {"probes", "traces", "graph"}
    assert all(v >= 0 for v in timing.values())


def test_resolve_created(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert resolve_created(CREATED) == (CREATED, 1767225600, True)
    assert resolve_created(1767225600) == (CREATED, 1767225600, True)
    assert resolve_created("1767225600")[0] == CREATED
    assert resolve_created(None)[2] is False
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert resolve_created(None) == ("1970-01-01T00:00:00Z", 0, True)
    for bad in ("yesterday", "2026-13-01T00:00:00Z", -1, True, 10**12):
        with pytest.raises(Exception) as info:
            resolve_created(bad)
        assert getattr(info.value, "code", None) == "USAGE"


# --------------------------------------------------------------------------- dtypes


def _group(name: str) -> str:
    if name.startswith("trace/"):
        return "trace_states"
    if name.startswith("anchor/"):
        return "anchor_states"
    return {
        "embedding": "concept_embeddings",
        "directions": "manifold_directions",
        "variances": "manifold_variances",
    }[name.rsplit("/", 1)[1]]


@pytest.mark.parametrize("dtype", ["f16", "bf16", "i8"])
def test_reduced_dtype_round_trips_with_recorded_error(teacher_dirs, dtype, tmp_path, capsys):
    ref = _packet(teacher_dirs, "hierarchy").packet
    out = tmp_path / f"{dtype}.m2kt"
    code, _, _ = _cli(
        capsys, "generate", "--teacher", teacher_dirs["hierarchy"], "-o", out,
        "--traces", K, "--created", CREATED, "--dtype", dtype,
    )  # fmt: skip
    assert code == 0
    packet = codec.read_packet(out)
    assert {t.dtype for t in packet.body.tensors} == {dtype}
    assert [t.name for t in packet.body.tensors] == [t.name for t in ref.body.tensors]
    recorded = packet.body.provenance.parameters["reconstruction_error"]
    num: dict[str, float] = {}
    den: dict[str, float] = {}
    bound: dict[str, float] = {}
    for t in packet.body.tensors:
        x = ref.tensor_f32(t.name).astype(np.float64)
        y = packet.tensor_f32(t.name).astype(np.float64)
        g = _group(t.name)
        num[g] = num.get(g, 0.0) + float(((y - x) ** 2).sum())
        den[g] = den.get(g, 0.0) + float((x**2).sum())
        if dtype == "i8":  # round to nearest: at most half a step per element
            bound[g] = bound.get(g, 0.0) + x.size * (t.scale / 2) ** 2
    assert set(recorded) == set(num)
    for g in num:
        err = math.sqrt(num[g] / den[g])
        assert recorded[g] == pytest.approx(err, rel=1e-9, abs=1e-15)
        limit = {"f16": 2.0**-11, "bf16": 2.0**-8}.get(dtype)
        if limit is None:
            limit = math.sqrt(bound[g] / den[g])
        assert err <= limit * (1 + 1e-6)
    assert "reconstruction_error" not in ref.body.provenance.parameters


# --------------------------------------------------------------------------- signing


def test_key_signs_and_packet_verifies(teacher_dirs, tmp_path, capsys):
    from m2kt_ref.packet.keys import SigningKey, write_key_pair
    from m2kt_ref.packet.signing import describe_signers, verify_file
    from m2kt_ref.packet.trust import TrustStore

    secret, public = write_key_pair(SigningKey(bytes(range(32))), tmp_path / "alice")
    out = tmp_path / "signed.m2kt"
    code, _, _ = _cli(
        capsys, "generate", "--teacher", teacher_dirs["modular"], "-o", out, "--key", secret,
        "--traces", K, "--created", CREATED,
    )  # fmt: skip
    assert code == 0
    assert verify_file(out, TrustStore.load([public])).valid
    assert _cli(capsys, "verify", "--trust", public, out)[0] == 0
    packet = codec.read_packet(out)
    assert describe_signers(packet)[0]["signing_time"] == CREATED
    unsigned = _packet(teacher_dirs, "modular").packet
    assert unsigned.packet_id == packet.packet_id  # signing leaves the body alone

    # a packet built from no task input at all cannot be signed (spec/signing.md §8)
    md = load_model_dir(teacher_dirs["modular"])
    nothing = md.task().problems().take(np.zeros(0, dtype=np.int64))
    with pytest.raises(Exception) as info:
        generate_from_model(
            md.model, md.task(), candidates=nothing, traces=0, created=CREATED,
            key=load_signing_key(secret),
        )  # fmt: skip
    assert info.value.code == "PROVENANCE_INCOMPLETE"


# --------------------------------------------------------------------------- user mistakes


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--dtype", "f64"], "USAGE"),
        (["--layer", "nope"], "USAGE"),
        (["--protected", "num:99"], "USAGE"),
        (["--traces", "-1"], "USAGE"),
        (["--created", "yesterday"], "USAGE"),
        (["--threads", "0"], "USAGE"),
        (["--key", "/nonexistent/k.key"], "IO_ERROR"),
    ],
)
def test_cli_user_mistakes(teacher_dirs, tmp_path, capsys, argv, code):
    out = tmp_path / "p.m2kt"
    rc, _, err = _cli(capsys, "generate", "--teacher", teacher_dirs["modular"], "-o", out, *argv)
    assert rc == 1 and err.startswith(f"{code}: ") and err.count("\n") == 1
    assert not out.exists()


def test_cli_missing_teacher_and_unwritable_output(teacher_dirs, tmp_path, capsys):
    rc, _, err = _cli(capsys, "generate", "--teacher", tmp_path / "none", "-o", tmp_path / "p")
    assert rc == 1 and err.startswith("IO_ERROR: ")
    target = tmp_path / "missing-dir" / "p.m2kt"
    rc, _, err = _cli(
        capsys, "generate", "--teacher", teacher_dirs["chain"], "-o", target, "--traces", 1
    )
    assert rc == 1 and err.startswith("IO_ERROR: ")


def test_protected_and_json_form(teacher_dirs, tmp_path, capsys):
    out = tmp_path / "p.json"
    code, text, _ = _cli(
        capsys, "generate", "--teacher", teacher_dirs["hierarchy"], "-o", out,
        "--protected", "node:root", "--protected", "query:is_a", "--json-form", "--traces", 2,
    )  # fmt: skip
    assert code == 0 and "signed" not in text.split(";")[-1]
    packet = codec.read_packet(out)
    assert packet.body.safety.protected_concepts == ["node:root", "query:is_a"]
    assert _cli(capsys, "validate", out)[0] == 0


# --------------------------------------------------------------------------- packet content


@pytest.fixture(scope="module")
def packets(teacher_dirs):
    torch.set_num_threads(1)
    return {f: _packet(teacher_dirs, f).packet for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_manifolds_match_anchor_states(packets, family):
    """Embedding, spread and variances recomputed from the anchors (eigh of the covariance)."""
    packet = packets[family]
    anchors: dict[str, list[np.ndarray]] = {}
    for a in packet.body.anchors:
        anchors.setdefault(a.concept, []).append(packet.tensor_f32(a.state).astype(np.float64))
    for c in packet.body.concepts:
        if c.kind == "cluster":
            continue
        x = np.stack(anchors[c.id])
        emb = packet.tensor_f32(c.embedding)
        np.testing.assert_allclose(emb, x.mean(0), rtol=1e-5, atol=1e-6)
        if len(x) < 2:
            assert c.manifold is None
            continue
        m = c.manifold
        assert m is not None and m.support == len(x)
        centred = x - x.mean(0)
        assert m.spread == pytest.approx(math.sqrt((centred**2).sum(1).mean()), rel=1e-5)
        eig = np.linalg.eigh(centred.T @ centred / len(x))[0][::-1]
        var = packet.tensor_f32(m.variances)
        np.testing.assert_allclose(var, eig[: len(var)], rtol=1e-4, atol=1e-7)
        directions = packet.tensor_f32(m.directions)
        np.testing.assert_allclose(directions @ directions.T, np.eye(len(var)), atol=1e-5)
        # the directions span the samples' (here at most n-1 dimensional) centred subspace
        residual = centred - centred @ directions.T @ directions
        assert np.abs(residual).max() <= 1e-4 * max(1.0, np.abs(centred).max())


@pytest.mark.parametrize("family", FAMILIES)
def test_graph_rules(packets, family):
    packet = packets[family]
    body = packet.body
    order = {c.id: i for i, c in enumerate(body.concepts)}
    keys = [(e.source, e.target, e.relation) for e in body.graph.edges]
    assert len(keys) == len(set(keys))
    assert all(0.0 <= e.weight <= 1.0 for e in body.graph.edges)
    weight = dict(zip(keys, (e.weight for e in body.graph.edges), strict=True))
    # every edge says where it came from, and none is the task's ground truth
    derivation = body.extensions["derivation"].data["edges"]
    assert len(derivation) == len(keys)
    assert set(derivation) <= {"teacher-geometry", "teacher-probe"}
    assert {
        r for (_, _, r), d in zip(keys, derivation, strict=True) if d == "teacher-geometry"
    } <= {
        "similar_to",
        "part_of",
    }
    # similar_to edges include every concept's nearest neighbour (the packet's own embeddings)
    task_ids = [c.id for c in body.concepts if c.kind != "cluster"]
    emb = np.stack([packet.tensor_f32(f"concept/{i}/embedding") for i in task_ids])
    cos = cosine_matrix(emb, emb)
    np.fill_diagonal(cos, -np.inf)
    for i, cid in enumerate(task_ids):
        j = int(np.argmax(cos[i]))
        pair = sorted((cid, task_ids[j]), key=order.__getitem__)
        assert (pair[0], pair[1], "similar_to") in weight
    # clusters: laminar, one part_of parent each, embedding = mean of the member concepts
    parent: dict[str, str] = {}
    for s, t, r in keys:
        if r == "part_of":
            assert t.startswith("cluster:") and s not in parent
            parent[s] = t
    members: dict[str, set[str]] = {}
    for cid in task_ids:
        node = cid
        while node in parent:
            node = parent[node]
            members.setdefault(node, set()).add(cid)
    clusters = [c for c in body.concepts if c.kind == "cluster"]
    assert {c.id for c in clusters} == set(members)
    for c in clusters:
        rows = [task_ids.index(m) for m in members[c.id]]
        np.testing.assert_allclose(
            packet.tensor_f32(c.embedding), emb[rows].mean(0), rtol=1e-5, atol=1e-6
        )
        assert c.level is not None
    sets = list(members.values())
    for a in sets:
        for b in sets:
            assert a <= b or b <= a or not a & b


@pytest.mark.parametrize("family", FAMILIES)
def test_traces_follow_the_teacher(teacher_dirs, packets, family):
    """Answers are the teacher's outputs; steps sit after every token past the first, named by
    the teacher's own readout (final norm and head) applied to its state there."""
    packet = packets[family]
    md = load_model_dir(teacher_dirs[family])
    task = md.task()
    assert packet.body.extensions["derivation"].data["trace_steps"] == "teacher-readout"
    x = torch.tensor([t.input for t in packet.body.traces])
    with torch.no_grad():
        answers = md.model(x).argmax(-1).tolist()
    readout = net_readout(md.model, default_layer(md.net_config))
    names = class_concepts(task)
    for trace, answer in zip(packet.body.traces, answers, strict=True):
        assert trace.answer == answer and trace.answer_label == task.answer_labels[answer]
        states = torch.from_numpy(packet.tensor_f32(trace.states))
        with torch.no_grad():
            decoded = readout(states).argmax(-1).tolist()
        assert [s.concept for s in trace.steps] == [names[c] for c in decoded]
        named = [p for p in step_positions(trace.input, task.seq_len) if p > 0]
        assert {s.position for s in trace.steps} <= set(named or [0])


def test_cover_traces_exercise_every_transition_of_the_teacher(teacher_dirs):
    md = load_model_dir(teacher_dirs["chain"])
    cover = generate_packet(md, created=CREATED)
    sel = cover.stats["trace_selection"]
    assert sel["method"] == "cover" and sel["covered"] == sel["exercised"] > 0
    assert cover.stats["traces"] < sel["candidates"]
    again = generate_packet(md, created=CREATED)
    assert codec.encode(again.packet) == codec.encode(cover.packet)  # deterministic
    few = generate_packet(md, created=CREATED, trace_selection="random", traces=2)
    assert few.stats["traces"] == 2 and few.stats["trace_selection"]["covered"] <= sel["covered"]


def test_declared_relations_only_on_request_and_marked(teacher_dirs):
    md = load_model_dir(teacher_dirs["chain"])
    plain = generate_packet(md, created=CREATED).packet
    declared = generate_packet(md, created=CREATED, declare=True).packet
    assert "declared" not in plain.body.extensions["derivation"].data["edges"]
    edges = declared.body.graph.edges
    kinds = declared.body.extensions["derivation"].data["edges"]
    got = {
        (e.source, e.target, e.relation)
        for e, k in zip(edges, kinds, strict=True)
        if k == "declared"
    }
    truth = {(r.source, r.target, r.relation) for r in md.task().relations()}
    assert got and got <= truth | {(t, s, r) for s, t, r in truth}


def test_operator_probes_yield_entries_and_edges(teacher_dirs):
    chain = generate_packet(load_model_dir(teacher_dirs["chain"]), created=CREATED, operators=True)
    entries = chain.packet.body.extensions["operators"].data["entries"]
    assert len(entries) == chain.stats["operator_entries"] > 0
    assert all(e["derivation"] == "teacher-probe" for e in entries)
    tree = generate_packet(
        load_model_dir(teacher_dirs["hierarchy"]), created=CREATED, operators=True
    )
    kinds = tree.packet.body.extensions["derivation"].data["edges"]
    isa = [
        e for e, k in zip(tree.packet.body.graph.edges, kinds, strict=True) if k == "teacher-probe"
    ]
    assert isa and all(e.relation == "is_a" for e in isa)
    assert tree.stats["operator_probes_used"] > 0  # deeper levels are not task problems


# --------------------------------------------------------------------------- low-level API


def test_generate_from_a_foreign_module():
    task = make_task("modular", p=7, ops="+")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Embedding(task.vocab_size, 12),
        torch.nn.Flatten(),
        torch.nn.Linear(task.seq_len * 12, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, task.n_classes),
    )
    with pytest.raises(Exception) as info:
        generate_from_model(model, task, created=CREATED)
    assert info.value.code == "USAGE"
    result = generate_from_model(model, task, layer="3", traces=3, created=CREATED)
    packet = codec.decode(codec.encode(result.packet))
    # no readout is known for a foreign module: steps are named by the nearest concept
    assert packet.body.extensions["derivation"].data["trace_steps"] == "nearest-concept"
    assert len(packet.body.traces) == 3
    assert packet.body.teacher.architecture == "Sequential"
    assert packet.body.teacher.latent_dim == 16 and packet.body.teacher.layer == "3"
    assert packet.body.teacher.model_digest == state_dict_digest(model)
    # every candidate problem ran through the teacher to decode its steps
    assert packet.body.provenance.task_inputs_used == len(task.problems())
    with pytest.raises(Exception) as info:
        generate_from_model(model, task, layer="0.weight", created=CREATED)
    assert info.value.code == "USAGE"


def test_state_dict_digest_is_the_weights_file_digest(teacher_dirs):
    md = load_model_dir(teacher_dirs["chain"])
    assert state_dict_digest(md.model) == "sha256:" + weights_digest(teacher_dirs["chain"])
    raw = (teacher_dirs["chain"] / "model.safetensors").read_bytes()
    assert md.weights_digest == hashlib.sha256(raw).hexdigest()


@pytest.mark.cuda
def test_cuda_matches_cpu(teacher_dirs):
    cpu = _packet(teacher_dirs, "hierarchy").packet
    gpu = _packet(teacher_dirs, "hierarchy", device="cuda").packet
    assert [c.id for c in gpu.body.concepts] == [c.id for c in cpu.body.concepts]
    assert gpu.body.provenance.task_inputs_used == cpu.body.provenance.task_inputs_used
    assert gpu.body.provenance.parameters["device"] == "cuda"
    for t in cpu.body.tensors:
        if t.name.startswith("anchor/"):
            np.testing.assert_allclose(gpu.tensor_f32(t.name), cpu.tensor_f32(t.name), atol=1e-4)


# --------------------------------------------------------------------------- primitives


def test_concept_statistics_edge_cases():
    one = concept_statistics(np.ones((1, 3)), 4)
    assert one.directions is None and one.support == 1 and one.spread == 0.0
    same = concept_statistics(np.ones((3, 3)), 4)
    assert same.directions is None and same.spread == 0.0 and same.support == 3
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 5))
    st = concept_statistics(x, 2)
    assert st.directions.shape == (2, 5) and st.variances.shape == (2,)
    assert np.all(np.diff(st.variances) <= 0)
    full = concept_statistics(x, 10)  # k = min(10, n-1, d) = 5
    assert full.variances.sum() == pytest.approx(full.spread**2)
    for row in full.directions:
        assert row[np.argmax(np.abs(row))] > 0


def test_knn_and_nearest():
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    edges = knn_similarity(emb, 1)
    assert [(i, j) for i, j, _ in edges] == [(0, 1), (1, 0), (2, 1), (3, 2)]
    assert edges[3][2] == 0.0  # cos(-x, y) = 0, clamped weights stay >= 0
    assert knn_similarity(emb[:1], 3) == []
    idx, sim = nearest_concepts(np.array([[0.0, 2.0], [0.0, 0.0]]), emb)
    assert idx.tolist() == [2, 0] and sim.tolist() == [1.0, 0.0]  # zero state: cos 0, first


def test_clusters_are_nested_cuts():
    assert cluster_cut_sizes(2, 3) == []
    assert cluster_cut_sizes(100, 3) == [3, 10, 32]
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((4, 8)) * 5
    emb = np.concatenate([c + rng.standard_normal((4, 8)) * 0.1 for c in centres])
    clusters, sizes = abstraction_clusters(emb, 1)
    assert sizes == [4]  # sqrt(16) clusters: the four groups
    assert [c.members for c in clusters] == [tuple(range(i, i + 4)) for i in (0, 4, 8, 12)]
    clusters, sizes = abstraction_clusters(emb, 3)
    assert sizes == cluster_cut_sizes(16, 3) == [2, 4, 8]
    sets = [set(c.members) for c in clusters]
    assert len({frozenset(s) for s in sets}) == len(sets)
    for a in sets:
        for b in sets:
            assert a <= b or b <= a or not a & b


def test_relative_rms_error():
    a = [np.array([3.0, 4.0])]
    assert relative_rms_error(a, [np.array([3.0, 4.0])]) == 0.0
    assert relative_rms_error(a, [np.array([3.0, 4.5])]) == pytest.approx(0.1)
    assert relative_rms_error([np.zeros(2)], [np.zeros(2)]) == 0.0


def test_declared_weight_outside_unit_interval_is_refused():
    from m2kt_ref.transfer.tasks import ModularTask, Relation

    class Overweight(ModularTask):
        def relations(self):
            return [*super().relations(), Relation("num:0", "num:2", "implies", 2.0)]

    task = Overweight(p=5, ops="+")
    model = _foreign_model(task)
    with pytest.raises(Exception) as info:
        generate_from_model(model, task, layer="3", created=CREATED, declare=True)
    assert info.value.code == "USAGE" and "num:0 -implies-> num:2" in str(info.value)
    generate_from_model(model, task, layer="3", created=CREATED)  # not declared: not read


def test_safety_overrides_and_teacher_fields():
    task = make_task("modular", p=5, ops="+")
    model = _foreign_model(task)
    result = generate_from_model(
        model,
        task,
        layer="3",
        teacher_name="foreign",
        safety={"max_parameter_drift": 0.1, "min_signers": 2},
        protected=["num:0", "num:0"],
        created=CREATED,
    )
    safety = result.packet.body.safety
    assert safety.max_parameter_drift == 0.1 and safety.min_signers == 2
    assert safety.protected_concepts == ["num:0"]
    assert safety.max_capability_drop == DEFAULT_SAFETY["max_capability_drop"]
    teacher = result.packet.body.teacher
    assert teacher.name == "foreign"
    assert teacher.n_parameters == sum(p.numel() for p in model.parameters())


def _foreign_model(task):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Embedding(task.vocab_size, 8),
        torch.nn.Flatten(),
        torch.nn.Linear(task.seq_len * 8, 8),
        torch.nn.Tanh(),
        torch.nn.Linear(8, task.n_classes),
    )
