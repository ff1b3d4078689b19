"""Benchmark: time and memory of reading 1,000 concept probes through a Hugging Face teacher.

For each model (tiny random-weight GPT-2, Llama and BERT configs with a word-level tokenizer,
and a wider GPT-2 to measure the arithmetic throughput this CPU reaches), a concept file of 250
concepts with 4 probes each (1,000 probes: a word, and the word after 1-3 context words) is
turned into a packet with :func:`m2kt_ref.transfer.hf.generate_hf_packet` (no prompts, f32,
pinned time). Each model runs in its own process, so its peak memory is its own:

- ``probes_s``: the forward passes over the probes (the generator's ``probes`` phase);
- ``total_s``: the whole generation (graph, clustering, assembly included);
- ``rss_load_mb``: resident memory after importing and loading the model; ``rss_peak_mb`` the
  peak during generation; their difference is what generation itself needed;
- ``gflop_per_s``: ``2 × parameters (without embeddings) × tokens`` over ``probes_s``.

Usage (figures in docs/huggingface.md)::

    python benchmarks/hf_probes.py --json probes.json      # one thread
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = {
    "gpt2-w64-d2": {"family": "gpt2", "width": 64, "layers": 2, "heads": 2},
    "llama-w64-d2": {"family": "llama", "width": 64, "layers": 2, "heads": 2},
    "bert-w64-d2": {"family": "bert", "width": 64, "layers": 2, "heads": 2},
    "gpt2-w512-d8": {"family": "gpt2", "width": 512, "layers": 8, "heads": 8},
}
CONTEXT = ["the", "a", "one", "this", "my", "old", "new", "big", "small", "red"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(name: str, threads: int) -> dict[str, Any]:
    """Build the model and the concept file, generate, measure (in this process)."""
    import torch

    torch.set_num_threads(threads)
    from m2kt_ref.transfer.hf import generate_hf_packet, load_hf_model
    from m2kt_ref.transfer.hf.text_task import parse_concepts
    from m2kt_ref.transfer.hf.tiny import save_tiny_model

    spec = MODELS[name]
    words = [f"w{i}" for i in range(250)]
    concepts = parse_concepts(
        {
            "concepts": [
                {
                    "id": w,
                    "label": w,
                    "probes": [w]
                    + [
                        {
                            "text": " ".join([*CONTEXT[(i + j) % 10 : (i + j) % 10 + j], w]),
                            "phrase": w,
                        }
                        for j in (1, 2, 3)
                    ],
                }
                for i, w in enumerate(words)
            ]
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny_model(
            Path(tmp) / name,
            spec["family"],
            [*CONTEXT, *words],
            width=spec["width"],
            layers=spec["layers"],
            heads=spec["heads"],
        )
        hf = load_hf_model(path)
        rss_load = _rss_mb()
        t = time.perf_counter()
        result = generate_hf_packet(hf, concepts, None, created=0)
        total = time.perf_counter() - t
    rss_peak = _rss_mb()
    rows = [a.input for a in result.packet.body.anchors]
    tokens = sum(sum(1 for t in r if t != hf.pad_id) for r in rows)
    body_params = sum(
        p.numel()
        for n, p in hf.rows.model.named_parameters()
        if "emb" not in n and "wte" not in n and "wpe" not in n and "lm_head" not in n
    )
    probes_s = result.stats["timing_s"].get("probes")
    return {
        "model": name,
        **spec,
        "parameters": sum(p.numel() for p in hf.rows.model.parameters()),
        "parameters_without_embeddings": body_params,
        "probes": len(rows),
        "tokens": tokens,
        "seq_len": len(rows[0]),
        "layer": result.packet.body.teacher.layer,
        "probes_s": probes_s,
        "total_s": round(total, 3),
        "timing_s": result.stats["timing_s"],
        "rss_load_mb": round(rss_load, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "packet_bytes": result.stats["packet_bytes"],
        "gflop_per_s": round(2 * body_params * tokens / probes_s / 1e9, 3) if probes_s else None,
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.threads)))
        return 0
    rows = []
    for name in args.models.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, "--threads", str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{name:<14} {row['parameters']:>10,} params  {row['probes']} probes "
            f"({row['tokens']} tokens, L={row['seq_len']})  forward {row['probes_s']:.3f}s  "
            f"total {row['total_s']:.2f}s  RSS {row['rss_load_mb']:.0f} -> {row['rss_peak_mb']:.0f}"
            f" MB  {row['gflop_per_s']} GFLOP/s  packet {row['packet_bytes']:,} B"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
